#!/usr/bin/env bash
# llama2.c's published greedy output of stories260K (256 forward steps from BOS, each printing a token)
# must be reproduced exactly, from the llama2.c .bin and from the GGUF.
set -u
S="$SK_DATA/stories260K"
fail=0
check() {
  local name=$1; shift
  local out
  out=$("$SK_SAKER" generate "$@" -p "" -n 256 --temp 0 --device cpu 2>/tmp/sk_golden_err.$$)
  local rc=$?
  if [ $rc -ne 0 ]; then echo "FAIL $name: exit $rc: $(cat /tmp/sk_golden_err.$$)"; fail=1; return; fi
  if [ "$out" == "$(cat "$S/expected_greedy_t0_256steps.txt")" ]; then
    echo "ok $name"
  else
    echo "FAIL $name: output differs"; diff <(echo "$out") "$S/expected_greedy_t0_256steps.txt" | head -20; fail=1
  fi
}
check bin -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin"
check gguf -m "$S/stories260K.gguf"
rm -f /tmp/sk_golden_err.$$
exit $fail
