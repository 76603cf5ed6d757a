#!/bin/bash
# RECORD of branch wt-ts2 (its binaries; main does not have these switches). Session 10: run once
# (steps check, e2e): correct, 2-20% slower, not merged (bench/results/awq-speed.md, session 10).
# Session 10 (issue 5): sk_w4_ts_kernel (w4.cuh) for STORE (qkv, with and without the fused norm)
# and ADD (o, down) at T <= 2: persistent blocks, x split once per block into shared memory (XS1),
# first device call. Written without a GPU (helper, branch wt-ts2); NOT YET RUN. STEPS picks what
# runs (default "check ts bops e2e"; about 4 + 3 + 3 + 10 minutes: split it over calls, e.g.
# STEPS="check ts" then STEPS="bops" then STEPS=e2e):
#  check  dev_gemv_w4 checkts: STORE (norm on / off) and ADD (onto random prior outputs) at T = 1,
#         2 only, the backend's launch and the 3 + 3 configurations of sk_w4_ts_launch_mode, bias
#         on / off, G 32 / 64 / 128, odd shapes plus persistent ones (4523x576, 9001x1088,
#         6421x4096, 5000x8192, 700 and 2300 x 28672, 4100x11008); must print "0 failed"
#         ("checks: ts STORE / ADD" gives its runs and worst error). The script stops otherwise.
#  ts     dev_gemv_w4 ts, twice: the backend's launch against each configuration on 70B and 7B
#         qkv (+norm), o and down at T = 1, 2 (two rounds each).
#  bops   gpu_backend_ops w4 and norm_matmul with SAKER_W4_TS_STORE=1..3 and SAKER_W4_TS_ADD=1..3
#         (each "0 failures"; the script stops otherwise).
#  e2e    70B INT4 batch 1, 128/256: the default, then each configuration of each mode,
#         alternating with the default, twice.
#  swcheck (not in the default STEPS) dev_gemv_w4 checksw and sw once: the SwiGLU default
#         (sk_w4_ts_kernel configuration 2) after this change to its kernel (a bias parameter,
#         MODE; ptxas 114 registers against 115 before): must be "0 failed" and as fast.
# Here (build machine), from the repository root of the wt-wk worktree:
#   cmake --build build-gpu --target dev_gemv_w4 gpu_backend_ops saker_cli -j2
#   mkdir -p .stage/ts2 && cp build-gpu/dev_gemv_w4 build-gpu/tests/gpu_backend_ops build-gpu/saker \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/ts2/ && strip .stage/ts2/{saker,gpu_*,dev_*}
#   cd .stage/ts2 && tar czf ts2_bin.tgz dev_gemv_w4 gpu_backend_ops saker libgomp.so.1 && \
#       rm dev_gemv_w4 gpu_backend_ops saker libgomp.so.1
#   (this script unpacks ts2_bin.tgz into /tmp/ts2_bin)
# On the device (run with carry [".stage/ts2"]): bash scripts/gpu_ts2.sh [STAGE]
# Logs: /tmp/ts2/*.log, packed into $OUT/ts2.tgz after every step.
. "$(dirname "$0")/device_lib.sh"
STEP_PATTERN="FAIL\|^checks\|failures\|^| 70B\|^| 7B\|RESULT\|ITL"
dev_init ts2 "${1:-.stage/ts2}"
if [ -f "$S/ts2_bin.tgz" ]; then # the binaries packed (see above)
    mkdir -p /tmp/ts2_bin && tar xzf "$S/ts2_bin.tgz" -C /tmp/ts2_bin || exit 1
    S=/tmp/ts2_bin
    export LD_LIBRARY_PATH=$S:$LD_LIBRARY_PATH
fi
unset SAKER_W4_TS_STORE SAKER_W4_TS_ADD
STEPS=${STEPS:-"check ts bops e2e"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv > "$R/gpu.log" 2>&1
for st in $STEPS; do
    case $st in
    check)
        step checkts 540 "$S/dev_gemv_w4" checkts
        grep -h "failed\|^checks: ts" "$R/checkts.log"
        if ! grep -q " 0 failed" "$R/checkts.log" || grep -q "^FAIL" "$R/checkts.log"; then
            echo "checkts did not pass: stopping (see $R/checkts.log)"
            grep -h "^FAIL" "$R/checkts.log" | head -20
            exit 1
        fi ;;
    ts)
        step ts_a 240 "$S/dev_gemv_w4" ts
        step ts_b 240 "$S/dev_gemv_w4" ts
        for f in ts_a ts_b; do
            echo "== $f: best per shape"
            sed -n '/^Best ts/,$p' "$R/$f.log"
        done ;;
    bops)
        for v in STORE ADD; do
            for c in 1 2 3; do
                for g in w4 norm_matmul; do
                    step bops_${g}_${v}$c 200 env SAKER_W4_TS_$v=$c "$S/gpu_backend_ops" $g
                    if ! grep -q " 0 failures" "$R/bops_${g}_${v}$c.log"; then
                        echo "gpu_backend_ops $g with SAKER_W4_TS_$v=$c did not pass: stopping"
                        grep -h "FAIL" "$R/bops_${g}_${v}$c.log" | head -10
                        exit 1
                    fi
                done
            done
        done ;;
    swcheck)
        step checksw 420 "$S/dev_gemv_w4" checksw
        grep -h "failed\|^checks: ts" "$R/checksw.log"
        step sw 200 "$S/dev_gemv_w4" sw
        sed -n '/^Best ts/,$p' "$R/sw.log" ;;
    e2e)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
        step e2e_default 100 "$S/saker" $F
        for r in 1 2; do
            for v in STORE ADD; do
                for c in 1 2 3; do
                    step e2e_r${r}_${v}${c} 100 env SAKER_W4_TS_$v=$c "$S/saker" $F
                    step e2e_r${r}_default_after_${v}${c} 100 "$S/saker" $F
                done
            done
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
