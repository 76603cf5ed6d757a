#!/usr/bin/env bash
# saker quantize end to end: stories260K (llama2.c source: q/k rows permuted to HF order, the
# tokenizer written as tokenizer.json) and a tiny HF Falcon fixture, RTN and AWQ with a small
# calibration, then `saker logits` and `saker tokenize` on the written AutoAWQ directories, and
# RTN checkpoints of two fixtures read by an independent numpy reader (tests/awq_layout.py).
# The quantized logits must be finite and near the source model's (normalised error < 0.25,
# argmax agreeing on most rows), AWQ's no farther than RTN's on stories260K, and the tokens
# identical. Bad arguments exit 2, bad input 1.
set -u
S="$SK_DATA/stories260K"
T=$(mktemp -d /tmp/sk_quantize_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
CAL="$SK_DATA/tinystories/tinystories_val.txt"
TOKS=1,403,407,261,378,296,264,286,273,310,266,278,297,264,280,262,325,284,270,301
run() { "$SK_SAKER" "$@" 2>"$T/err" >/dev/null || { echo "FAIL: saker $*: $(tail -3 "$T/err")"; fail=1; }; }

run quantize -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --method rtn --group 32 -o "$T/rtn"
run quantize -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --method awq --group 32 \
    --calib "$CAL" --calib-samples 4 --calib-len 128 -o "$T/awq"
run logits -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --tokens $TOKS -o "$T/ref.f32" --device cpu
run logits -m "$T/rtn" --tokens $TOKS -o "$T/rtn.f32" --device cpu
run logits -m "$T/awq" --tokens $TOKS -o "$T/awq.f32" --device cpu
a=$("$SK_SAKER" tokenize -m "$S/stories260K.bin" --tokenizer "$S/tok512.bin" -p "Lily found a big red ball. She was happy!" 2>/dev/null)
b=$("$SK_SAKER" tokenize -m "$T/awq" -p "Lily found a big red ball. She was happy!" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: tokens differ: '$a' vs '$b'"; fail=1; }
grep -q '"quant_method": "awq"' "$T/awq/config.json" || { echo "FAIL: no quantization_config"; fail=1; }

python3 - "$T" 512 <<'PY' || fail=1
import math, struct, sys
d, V = sys.argv[1], int(sys.argv[2])
def load(n):
    b = open(f"{d}/{n}.f32", "rb").read()
    x = struct.unpack(f"<{len(b)//4}f", b)
    return [x[i:i + V] for i in range(0, len(x), V)]
ref = load("ref")
errs = {}
for n in ("rtn", "awq"):
    q = load(n)
    assert len(q) == len(ref), n
    assert all(math.isfinite(v) for r in q for v in r), f"{n}: non-finite logits"
    m = max(abs(v) for r in ref for v in r)
    e = max(abs(a - b) for r, s in zip(q, ref) for a, b in zip(r, s)) / m
    agree = sum(max(range(V), key=r.__getitem__) == max(range(V), key=s.__getitem__) for r, s in zip(q, ref))
    mse = sum((a - b) ** 2 for r, s in zip(q, ref) for a, b in zip(r, s)) / (len(q) * V)
    print(f"{n}: normalised max error {e:.4f}, logit MSE {mse:.5f}, argmax agrees on {agree}/{len(q)} rows")
    assert e < 0.25 and agree >= 0.8 * len(q), f"{n}: too far from the source model"
    errs[n] = mse
assert errs["awq"] <= errs["rtn"] * 1.05, f"AWQ logit MSE {errs['awq']} above RTN {errs['rtn']}"
PY

F="$SK_FIXTURES/hf-falcon-seq-bias"
run quantize -m "$F" --method awq --group 32 --calib "$CAL" --calib-samples 2 --calib-len 64 -o "$T/falcon"
run logits -m "$T/falcon" --tokens 1,5,9,200,17 -o "$T/falcon.f32" --device cpu
[ -s "$T/falcon.f32" ] && [ "$(stat -c %s "$T/falcon.f32")" -eq $((5 * 300 * 4)) ] || { echo "FAIL: falcon logits size"; fail=1; }
cmp -s "$F/tokenizer.json" "$T/falcon/tokenizer.json" || { echo "FAIL: tokenizer.json not copied"; fail=1; }

# the packed layout read back the way AutoAWQ's dequantize_gemm reads it (numpy), against the
# source weights: RTN must be within half a step everywhere (Llama GQA; Falcon 180B style, whose
# fused QKV goes back to transformers' grouped row order)
for f in hf-llama-gqa-tied hf-falcon-180b-style; do
  run quantize -m "$SK_FIXTURES/$f" --method rtn --group 32 -o "$T/$f"
  python3 "$(dirname "$0")/../awq_layout.py" "$SK_FIXTURES/$f" "$T/$f" || fail=1
done

expect() { # expect RC PATTERN -- args...
  local want=$1 pat=$2; shift 3
  local err; err=$("$SK_SAKER" "$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc -ne "$want" ] || ! grep -q -- "$pat" <<<"$err"; then echo "FAIL: saker $* -> $rc ($err)"; fail=1; fi
}
expect 2 "required" -- quantize -m "$S/stories260K.gguf"
expect 2 "not 32, 64 or 128" -- quantize -m "$S/stories260K.gguf" --group 48 -o "$T/x"
expect 2 "only 4" -- quantize -m "$S/stories260K.gguf" --bits 3 -o "$T/x"
expect 2 "awq or rtn" -- quantize -m "$S/stories260K.gguf" --method gptq -o "$T/x"
expect 1 "no such file" -- quantize -m /nonexistent.gguf --method rtn -o "$T/x"
expect 1 "cannot" -- quantize -m "$S/stories260K.gguf" --calib /nonexistent.txt -o "$T/x"
[ $fail -eq 0 ] && echo "quantize.sh: ok"
exit $fail
