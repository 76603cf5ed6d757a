#!/bin/bash
# Decode attention kernel 4 (src/backend/cuda/attn_decode_mq.cuh) on the GPU machine in one call:
# the workbench's self-test, checks and timing with it (version "v4 mq"), torch SDPA on the same
# shapes, gpu_backend_ops attention/decode with the backend's default (kernel 4 for groups >= 9
# since session 6) and with SAKER_ATTN_MQ=0 (kernel 2), the engine A/B on the shapes with large
# groups (Falcon-180B g29 INT4 at batch 1 and 64; the synthetic shapes have no MQA model, so MQA
# is measured by the workbench only), and compute-sanitizer racecheck / memcheck of
# gpu_backend_ops decode.
# Results: $OUT/mq.tgz (rewritten after each step) and a summary on stdout.
#
# Here (build machine), from the repository root:
#   cmake -S . -B build-gpu -DSAKER_STATIC_DEPS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-gpu -j2 --target saker_cli gpu_backend_ops dev_attention_decode
#   mkdir -p .stage/mq && cp build-gpu/saker build-gpu/tests/gpu_backend_ops \
#       build-gpu/dev_attention_decode bench/attention_decode_torch.py \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/mq/ && strip .stage/mq/saker .stage/mq/gpu_* \
#       .stage/mq/dev_*
# On the device (run with carry [".stage/mq"]): bash scripts/gpu_attn_mq.sh [STAGE]
. "$(dirname "$0")/device_lib.sh"
dev_init mq "${1:-.stage/mq}"
step workbench 300 "$S/dev_attention_decode" all
grep -E "SUMMARY" -A16 "$R/workbench.log"
step torch 120 python3 "$S/attention_decode_torch.py"
grep -A12 "^SUMMARY" "$R/torch.log"
step bops_attention 150 "$S/gpu_backend_ops" attention
step bops_decode 150 "$S/gpu_backend_ops" decode
step bops_attention_k2 150 env SAKER_ATTN_MQ=0 "$S/gpu_backend_ops" attention
F="bench --device cuda --shape falcon-180b --weights int4 --isl 128"
step f180_b1 120 "$S/saker" $F --batch 1 --osl 32
step f180_b1_k2 120 env SAKER_ATTN_MQ=0 "$S/saker" $F --batch 1 --osl 32
step f180_b64 200 "$S/saker" $F --batch 64 --osl 128
step f180_b64_k2 200 env SAKER_ATTN_MQ=0 "$S/saker" $F --batch 64 --osl 128
command -v compute-sanitizer > /dev/null && {
    step racecheck_decode 200 compute-sanitizer --tool racecheck --print-limit 20 \
        "$S/gpu_backend_ops" decode
    step memcheck_decode 200 compute-sanitizer --tool memcheck --print-limit 20 \
        "$S/gpu_backend_ops" decode
}
echo "done (+$(( $(date +%s) - T0 )) s)"
