#!/usr/bin/env bash
# CLI contract: text alone on stdout, 0 on success, 2 on a usage error, 1 on a runtime error with
# one clear line on stderr naming the problem.
set -u
S="$SK_DATA/stories260K"
fail=0
expect() { # expect RC PATTERN_IN_STDERR -- args...
  local want=$1 pat=$2; shift 3
  local err; err=$("$SK_SAKER" "$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc -ne "$want" ]; then echo "FAIL: saker $* -> exit $rc, want $want ($err)"; fail=1; return; fi
  if [ -n "$pat" ] && ! grep -q -- "$pat" <<<"$err"; then echo "FAIL: saker $*: stderr lacks '$pat': $err"; fail=1; return; fi
  echo "ok ($rc): saker $*"
}
expect 2 "" -- 
expect 2 "unknown command" -- frobnicate
expect 2 "unknown option" -- generate -m x -p y --bogus
expect 2 "required" -- generate -p hello
expect 2 "not an integer" -- generate -m "$S/stories260K.gguf" -p hi -n abc
expect 2 "not one of" -- generate -m "$S/stories260K.gguf" -p hi --device tpu
expect 2 "required" -- logits -m "$S/stories260K.gguf" -o /tmp/x
expect 2 "comma-separated" -- logits -m "$S/stories260K.gguf" --tokens 1,x -o /tmp/x
expect 1 "no such file" -- generate -m /nonexistent/model.gguf -p hi
expect 1 "tokenizer" -- generate -m "$S/stories260K.bin" -p hi
expect 1 "$S/tok512.bin" -- info -m "$S/tok512.bin"
expect 1 "999999" -- logits -m "$S/stories260K.gguf" --tokens 1,999999 -o /tmp/sk_exit_codes.f32
expect 1 "context" -- generate -m "$S/stories260K.gguf" -p "$(printf 'Once upon a time %.0s' $(seq 1 200))" --ctx 64 -n 4 --temp 0
expect 1 "exceed the model's context of 512" -- bench -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --device cpu --isl 500 --osl 20
# lengths under the warm-up request's 16 + 4 tokens (the engine's context is isl + osl)
expect 0 "" -- bench -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --device cpu --isl 8 --osl 2
expect 0 "training context" -- bench -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --device cpu --isl 500 --osl 20 --ctx-beyond-train
# a list whose second run fails keeps the first run's JSON readable, marked incomplete
"$SK_SAKER" bench -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --device cpu --isl 100,500 --osl 20 \
    --json /tmp/sk_bench_partial.json >/dev/null 2>&1
if python3 -c "import json,sys; d=json.load(open('/tmp/sk_bench_partial.json')); sys.exit(0 if d.get('incomplete') and len(d['runs']) == 1 else 1)"; then
  echo "ok: partial bench JSON"
else
  echo "FAIL: partial bench JSON"; fail=1
fi
expect 0 "" -- info -m "$S/stories260K.gguf"
expect 0 "" -- tokenize -m "$S/stories260K.gguf" -p "Once upon a time"
# stdout holds the text alone: logs go to stderr.
out=$("$SK_SAKER" tokenize -m "$S/stories260K.gguf" -p "Once upon a time" 2>/dev/null)
if [[ "$out" =~ ^[0-9\ ]+$ ]]; then echo "ok: tokenize stdout is ids only"; else echo "FAIL: tokenize stdout: $out"; fail=1; fi
rm -f /tmp/sk_exit_codes.f32
exit $fail
