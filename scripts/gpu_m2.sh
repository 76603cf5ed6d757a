#!/bin/bash
# Branch wt-m2 (session 11, NOT YET RUN ON A GPU): the W4 cost model's second coefficient set for
# 512 rows and more (sk_w4m_costs_big, SAKER_W4_MODEL_BIG=1; off by default until this A/B).
# Predicted from the bn logs: 70B at 1,146 rows qkv 319 -> 301 us, o 252 -> 249, gate/up 1,690 ->
# 1,715, down 832 -> 768 (wt128x192 for all four): -59 us a layer, the 128/128 decode step ~-1.6%.
#  check  gpu_backend_ops w4 with SAKER_W4_MODEL_BIG=1 (must be "0 failures");
#  table  dev_gemm_w4 time (the issue's table, the backend's pick) at 512..2048 rows, off / on;
#  e2e    70B INT4 128/128 at batch 1,146 (--batch max), off / on / off.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4 -j2; then stage
#   build-gpu/saker, build-gpu/tests/gpu_backend_ops, build-gpu/dev_gemm_w4 and libgomp.so.1 in
#   .stage/m2 (strip; tar czf m2_bin.tgz when over ~50 MB, as scripts/gpu_s11.sh does).
# On the device: carry [".stage/m2"], STEPS="..." bash scripts/gpu_m2.sh
. "$(dirname "$0")/device_lib.sh"
dev_init m2 "${1:-.stage/m2}"
dev_unpack m2_bin.tgz
STEPS=${STEPS:-"check table e2e"}
STEP_PATTERN="FAIL\|failures\|^| [0-9]"
for st in $STEPS; do
    case $st in
    check) step check_big 300 env SAKER_W4_MODEL_BIG=1 stdbuf -oL "$S/gpu_backend_ops" w4 ;;
    table)
        for v in 0 1; do
            step table_big$v 300 env SAKER_W4_MODEL_BIG=$v GW4_CFGS=none stdbuf -oL \
                "$S/dev_gemm_w4" time 512,768,1024,1146,1536,2048
        done ;;
    e2e)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max --isl 128 --osl 128"
        for v in 0 1 0; do step e2e_big$v 200 env SAKER_W4_MODEL_BIG=$v "$S/saker" $F; done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
