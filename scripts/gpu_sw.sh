#!/bin/bash
# Session 11 (issue 5): sk_w4_ts_kernel (w4.cuh), the SwiGLU (gate/up) decode GEMV at T <= 2 on
# persistent blocks (one ring across a block's tiles; x split once per block), first device call.
# Written without a GPU (helper, branch wt-sw); NOT YET RUN. STEPS picks what runs (default
# "check sw bops e2e"; about 3 + 2 + 2 + 8 minutes: split it over calls, e.g. STEPS="check sw
# bops" then STEPS=e2e):
#  check  dev_gemv_w4 checksw: SwiGLU at T = 1, 2 only, the backend's launch and the 4
#         configurations of sk_w4_ts_launch_cfg with and without the fused norm, G 32 / 64 / 128,
#         odd shapes plus persistent ones (4523x576, 9001x1088, 6421x4096, 5000x8192, 700 and
#         2300 x 28672); must print "0 failed" ("checks: ts" gives its runs and worst error).
#         The script stops here otherwise.
#  sw     dev_gemv_w4 sw, twice: the backend's launch against each configuration on 70B and 7B
#         gate/up at T = 1, 2, with the fused norm (two rounds) and without (one).
#  bops   gpu_backend_ops w4 and norm_matmul with SAKER_W4_TQ_SW=1..4 (each "0 failures").
#  e2e    70B INT4 batch 1, 128/256: SAKER_W4_TQ_SW=0 then each configuration, alternating, twice.
# Here (build machine), from the repository root of the wt-wk worktree:
#   cmake --build build-gpu --target dev_gemv_w4 gpu_backend_ops saker_cli -j2
#   mkdir -p .stage/sw && cp build-gpu/dev_gemv_w4 build-gpu/tests/gpu_backend_ops build-gpu/saker \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/sw/ && strip .stage/sw/{saker,gpu_*,dev_*}
#   (stripped they are 56 MB; packed as .stage/sw/sw_bin.tgz, 41 MB, which this script unpacks
#   into /tmp/sw_bin: cd .stage/sw && tar czf sw_bin.tgz dev_gemv_w4 gpu_backend_ops saker
#   libgomp.so.1 && rm dev_gemv_w4 gpu_backend_ops saker libgomp.so.1)
# On the device (run with carry [".stage/sw"]): bash scripts/gpu_sw.sh [STAGE]
# Logs: /tmp/sw/*.log, packed into $OUT/sw.tgz after every step.
. "$(dirname "$0")/device_lib.sh"
STEP_PATTERN="FAIL\|^checks\|failures\|^| 70B\|^| 7B\|RESULT\|ITL"
dev_init sw "${1:-.stage/sw}"
if [ -f "$S/sw_bin.tgz" ]; then # the binaries packed (see above)
    mkdir -p /tmp/sw_bin && tar xzf "$S/sw_bin.tgz" -C /tmp/sw_bin || exit 1
    S=/tmp/sw_bin
    export LD_LIBRARY_PATH=$S:$LD_LIBRARY_PATH
fi
STEPS=${STEPS:-"check sw bops e2e"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv > "$R/gpu.log" 2>&1
for st in $STEPS; do
    case $st in
    check)
        step checksw 420 "$S/dev_gemv_w4" checksw
        grep -h "failed\|^checks: ts" "$R/checksw.log"
        if ! grep -q " 0 failed" "$R/checksw.log" || grep -q "^FAIL" "$R/checksw.log"; then
            echo "checksw did not pass: stopping (see $R/checksw.log)"
            grep -h "^FAIL" "$R/checksw.log" | head -20
            exit 1
        fi ;;
    sw)
        step sw_a 200 "$S/dev_gemv_w4" sw
        step sw_b 200 "$S/dev_gemv_w4" sw
        for f in sw_a sw_b; do
            echo "== $f: best per shape"
            sed -n '/^Best ts/,$p' "$R/$f.log"
        done ;;
    bops)
        for c in 1 2 3 4; do
            for g in w4 norm_matmul; do
                step bops_${g}_$c 200 env SAKER_W4_TQ_SW=$c "$S/gpu_backend_ops" $g
                if ! grep -q " 0 failures" "$R/bops_${g}_$c.log"; then
                    echo "gpu_backend_ops $g with SAKER_W4_TQ_SW=$c did not pass: stopping"
                    grep -h "FAIL" "$R/bops_${g}_$c.log" | head -10
                    exit 1
                fi
            done
        done ;;
    e2e)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
        for r in 1 2; do
            for c in 1 2 3 4; do
                step e2e_r${r}_sw0_before$c 100 env SAKER_W4_TQ_SW=0 "$S/saker" $F
                step e2e_r${r}_sw$c 100 env SAKER_W4_TQ_SW=$c "$S/saker" $F
            done
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
