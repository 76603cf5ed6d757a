#!/bin/bash
# ZC3 and ZC4 of the INT4 decode GEMV (w4.cuh: the A operand one AND a pair, the nibbles as fp16
# subnormals; the zero point after the MMAs from column sums, or in them by one more MMA with
# A = -z), first device call (written in session 8 and run the same session: every check 0
# failed, ZC3 faster on the 70B products; bench/results/awq-speed.md):
#  1. dev_gemv_w4 check: every configuration against the CPU reference, now with ZC3 and ZC4 at
#     T = 1, 2 (MT1 / MT2, STORE / ADD / SwiGLU, G 32 / 64 / 128, KS 4 / 8 / 3 / 1) and the fused
#     RMSNorm (ZC0 / 2 / 3 / 4 and the backend's launch with gamma); must print "0 failed". Then
#     again with SAKER_W4_ZC=3 and =4, where the backend's own launch (sk_w4_gemv_launch_t) takes
#     ZC3 / ZC4 at T <= 2 (the "backend" rows of the check).
#  2. dev_gemv_w4 zc, twice: ZC2 (the default) against ZC3 and ZC4 in the backend's shape of each
#     Llama-2-70B and 7B product at T = 1, 2 (qkv and gate/up with the fused norm, o and down
#     ADD), each call two rounds in rotated order; then the summed decode-step GEMV ms.
#  3. If staged: gpu_backend_ops w4 and norm_matmul with SAKER_W4_ZC=3 and =4 (the backend ops
#     against the CPU backend).
# Not here (for a later call: ~2 more minutes): dev_gemv_w4 gemv, the whole timing table, which
# now also times ZC3 / ZC4 at MT1 and MT2 with KS 4 and 8 at T = 1, 2.
# Here (build machine), from the repository root:
#   cmake --build build-gpu -j2 --target dev_gemv_w4
#   mkdir -p .stage/zc3 && cp build-gpu/dev_gemv_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/zc3/ &&
#       strip .stage/zc3/dev_*
#   optional, for step 3 (~14 MB more; build-gpu is configured with -DSAKER_STATIC_DEPS=ON):
#   cmake --build build-gpu -j2 --target gpu_backend_ops && cp build-gpu/tests/gpu_backend_ops \
#       .stage/zc3/ && strip .stage/zc3/gpu_backend_ops
# On the device (run with carry [".stage/zc3"]): bash scripts/gpu_zc3.sh [STAGE]
# Logs: /tmp/zc3/*.log, packed into $OUT/zc3.tgz after every step.
. "$(dirname "$0")/device_lib.sh"
STEP_PATTERN="FAIL\|^checks\|^-- \|^backend_ops"
dev_init zc3 "${1:-.stage/zc3}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv > "$R/gpu.log" 2>&1
step check 150 "$S/dev_gemv_w4" check
step check_zc3 150 env SAKER_W4_ZC=3 "$S/dev_gemv_w4" check
step check_zc4 150 env SAKER_W4_ZC=4 "$S/dev_gemv_w4" check
grep -h "failed\|^checks: tc" "$R/check.log" "$R/check_zc3.log" "$R/check_zc4.log"
step zc_a 90 "$S/dev_gemv_w4" zc
step zc_b 90 "$S/dev_gemv_w4" zc
grep -h "^| 70B\|^| 7B\|^| Llama" "$R/zc_a.log" "$R/zc_b.log"
if [ -x "$S/gpu_backend_ops" ]; then
    for z in 3 4; do
        step bops_w4_zc$z 60 env SAKER_W4_ZC=$z "$S/gpu_backend_ops" w4
        step bops_nm_zc$z 60 env SAKER_W4_ZC=$z "$S/gpu_backend_ops" norm_matmul
    done
fi
echo "done (+$(( $(date +%s) - T0 )) s)"
