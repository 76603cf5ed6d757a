#!/bin/bash
# Session 8: the W4 wgmma GEMM with a TMA producer warp (sk_w4ws_kernel's TMA, wt128xBN).
#  1. dev_gemm_w4 check of the wt configurations alone (traced: a hang names its launch);
#  2. widths: every wt and session 6 wgmma width at 72..1024 rows, twice;
#  3. gpu_backend_ops w4 (and under compute-sanitizer memcheck);
#  4. engine A/B, Llama-2-70B INT4 128/256 at batch 72, 139, 256: default against SAKER_W4_TMA=0;
#  5. the issue's points 128/2048 and 128/4096 at the largest batch.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4; mkdir -p
#   .stage/s8t && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/s8t/ && strip .stage/s8t/{saker,gpu_backend_ops,dev_gemm_w4}
# Session 8 ran these steps over four calls (the call limit is 600 s); run a subset with
# STEPS="check widths bops ab points".
. "$(dirname "$0")/device_lib.sh"
dev_init s8t "${1:-.stage/s8t}"
STEPS=${STEPS:-"check widths bops ab"}
STEP_PATTERN="FAIL\|checks\|^| 128"
W=wt128x64,wt128x80,wt128x96,wt128x128,wt128x144,wt128x160,wt128x192
for st in $STEPS; do
    case $st in
    check) step check_wt 200 env GW4_CFGS=$W GW4_TRACE=1 "$S/dev_gemm_w4" check ;;
    widths)
        G=g128x64,g128x80,g128x96,g128x128,g128x144,g128x160,g128x192,$W
        step t1 200 env GW4_CFGS=$G "$S/dev_gemm_w4" time 72,96,128,139,160,192,256,384,512,1024
        step t2 200 env GW4_CFGS=$G "$S/dev_gemm_w4" time 72,96,128,139,160,192,256,384,512,1024 ;;
    bops)
        step bops_w4 200 stdbuf -oL "$S/gpu_backend_ops" w4
        step bops_w4_cs 300 compute-sanitizer --tool memcheck "$S/gpu_backend_ops" w4 ;;
    ab)
        for b in 139 72 256; do
            F="bench --device cuda --shape llama2-70b --weights int4 --batch $b --isl 128 --osl 256"
            step e${b}_tma 150 "$S/saker" $F
            step e${b}_old 150 env SAKER_W4_TMA=0 "$S/saker" $F
        done ;;
    points)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
        step p2048 260 "$S/saker" $F --isl 128 --osl 2048
        step p4096 300 "$S/saker" $F --isl 128 --osl 4096 --ctx-beyond-train ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
