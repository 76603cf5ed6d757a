#!/usr/bin/env bash
# `saker logits` on the CPU against transformers' logits (fixtures from scripts/make_fixtures.py):
# tiny random-weight Llama (GQA, MQA, MHA; tied, untied; f32/bf16/f16) and Falcon (7B style,
# 180B style, sequential with biases) checkpoints, and SmolLM2-135M from its GGUF.
set -u
fail=0
for d in "$SK_FIXTURES"/hf-*/; do
  python3 "$(dirname "$0")/../compare_logits.py" "$SK_SAKER" "$d" "$d/reference.json" 1e-4 --device cpu || fail=1
done
python3 "$(dirname "$0")/../compare_logits.py" "$SK_SAKER" "$SK_SMOLLM2" "$SK_FIXTURES/smollm2_logits.json" 1e-4 --device cpu || fail=1
exit $fail
