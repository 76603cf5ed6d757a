#!/bin/bash
# Session 6, one device call: gpu_backend_ops attention/decode with decode kernel 4 as the default
# for groups >= 9 (2 stages), the workbench's kernel-4 checks under compute-sanitizer racecheck on
# small cases, and the Llama-2-70B INT4 engine points of issue 5 at the largest batch that fits
# (128/2048, 128/4096, 2048/128). Results: $OUT/int4.tgz (rewritten after each step), summary on
# stdout.
# Here: build saker_cli gpu_backend_ops dev_attention_decode in build-gpu and stage them with
# libgomp in .stage/mq (see scripts/gpu_attn_mq.sh); on the device: bash scripts/gpu_int4_points.sh
. "$(dirname "$0")/device_lib.sh"
dev_init int4 "${1:-.stage/mq}"
step bops_attention 150 "$S/gpu_backend_ops" attention
step bops_decode 150 "$S/gpu_backend_ops" decode
step race_g29 120 env AD_CASES="g29 hd64" AD_ONLY_V4=1 compute-sanitizer --tool racecheck \
    --print-limit 20 "$S/dev_attention_decode" check
step race_g16 120 env AD_CASES="g16 hd128" AD_ONLY_V4=1 compute-sanitizer --tool racecheck \
    --print-limit 20 "$S/dev_attention_decode" check
F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
step p128_2048 240 "$S/saker" $F --isl 128 --osl 2048
step p2048_128 200 "$S/saker" $F --isl 2048 --osl 128
step p128_4096 300 "$S/saker" $F --isl 128 --osl 4096
echo "done (+$(( $(date +%s) - T0 )) s)"
