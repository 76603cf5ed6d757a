#!/bin/bash
# Session 9: sk_w4_tq_kernel (w4.cuh), the decode GEMV's one-wave / deeper-ring variant for the
# small products (70B qkv with the fused norm, o and down ADD), first device call. Written without
# a GPU (helper, branch wt-gemv); NOT YET RUN.
#  1. dev_gemv_w4 check: every configuration against the CPU reference, now with sk_w4_tq_kernel's
#     8 configurations (sk_w4_tq_launch_cfg: STORE 1..4 with and without the fused norm, ADD
#     1..4) at T = 1, 2, G 32 / 64 / 128, L2 prefetch off and at 3 steps; must print "0 failed"
#     (the "checks: tq" line gives its runs and worst error). Stops here otherwise.
#  2. dev_gemv_w4 s9, twice: the backend's launch (the current default) against each tq
#     configuration with the prefetch off and at 4 steps, on 70B and 7B qkv (+norm), o and down
#     at T = 1, 2; each call two rounds (the second in reverse order); then the best per shape and
#     the qkv + o + down share of a decode step.
#  3. dev_gemv_w4 check again with the backend switch on (SAKER_W4_TQ_STORE=4 SAKER_W4_TQ_ADD=3
#     SAKER_W4_TQ_PF=0: the "backend" rows of the check then go through sk_w4_tq_kernel); and, if
#     staged, gpu_backend_ops w4 / norm_matmul with the same switch.
# Here (build machine), from the repository root of the wt-gemv worktree:
#   cmake --build build-gpu -j2 --target dev_gemv_w4
#   mkdir -p .stage/gv && cp build-gpu/dev_gemv_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/gv/ &&
#       strip .stage/gv/dev_gemv_w4
#   optional, for step 3's backend ops (build-gpu is configured with -DSAKER_STATIC_DEPS=ON):
#   cmake --build build-gpu -j2 --target gpu_backend_ops && cp build-gpu/tests/gpu_backend_ops \
#       .stage/gv/ && strip .stage/gv/gpu_backend_ops
# On the device (run with carry [".stage/gv"]): bash scripts/gpu_gemv_s9.sh [STAGE]
# Logs: /tmp/gv/*.log, packed into $OUT/gv.tgz after every step. About 4-6 minutes.
. "$(dirname "$0")/device_lib.sh"
STEP_PATTERN="FAIL\|^checks\|^| 70B\|^| Llama"
dev_init gv "${1:-.stage/gv}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv > "$R/gpu.log" 2>&1
step check 240 "$S/dev_gemv_w4" check
grep -h "failed\|^checks: tq" "$R/check.log"
if ! grep -q " 0 failed" "$R/check.log" || grep -q "^FAIL" "$R/check.log"; then
    echo "check did not pass: stopping before the timing (see $R/check.log)"
    grep -h "^FAIL" "$R/check.log" | head -20
    exit 1
fi
step s9_a 150 "$S/dev_gemv_w4" s9
step s9_b 150 "$S/dev_gemv_w4" s9
for f in s9_a s9_b; do
    echo "== $f: best per shape, and the step"
    sed -n '/^Best tq/,$p' "$R/$f.log"
done
step check_sw 240 env SAKER_W4_TQ_STORE=4 SAKER_W4_TQ_ADD=3 SAKER_W4_TQ_PF=0 "$S/dev_gemv_w4" check
grep -h "failed" "$R/check_sw.log"
if [ -x "$S/gpu_backend_ops" ]; then
    STEP_PATTERN="FAIL\|^backend_ops\|failures"
    step bops_w4 90 env SAKER_W4_TQ_STORE=4 SAKER_W4_TQ_ADD=3 "$S/gpu_backend_ops" w4
    step bops_nm 90 env SAKER_W4_TQ_STORE=4 SAKER_W4_TQ_ADD=3 "$S/gpu_backend_ops" norm_matmul
fi
echo "done (+$(( $(date +%s) - T0 )) s)"
