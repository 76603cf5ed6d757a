#!/bin/bash
# Session 6, one device call: the W4A16 wgmma GEMM with x tiles 80..192 wide (w4_mma.cuh):
# dev_gemm_w4 check (every configuration), timing at the rows around the new widths, gpu_backend_ops
# w4, and the Llama-2-70B INT4 engine at batch 139 (128/2048's batch) with the new picks and with
# SAKER_W4_BN=0 (session 5's); with POINTS=1 also the issue's INT4 engine points at the largest
# batch (128/2048, 2048/128, 128/4096). Results: $OUT/bn.tgz, summary on stdout.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4, then
#   mkdir -p .stage/bn && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4 \
#     /lib/x86_64-linux-gnu/libgomp.so.1 .stage/bn/ && strip .stage/bn/saker .stage/bn/gpu_* .stage/bn/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init bn "${1:-.stage/bn}"
step check 200 "$S/dev_gemm_w4" check
step bn 100 "$S/dev_gemm_w4" bn 70,96,100,128,139,150,160,180,192
grep "\*" "$R/bn.log" | head -60
step bops_w4 120 "$S/gpu_backend_ops" w4
F="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 128 --osl 256"
step e139 150 "$S/saker" $F
step e139_bn0 150 env SAKER_W4_BN=0 "$S/saker" $F
[ "$POINTS" = 1 ] && {
    P="bench --device cuda --shape llama2-70b --weights int4 --batch max"
    step p128_2048 200 "$S/saker" $P --isl 128 --osl 2048
    step p2048_128 150 "$S/saker" $P --isl 2048 --osl 128
    step p128_4096 200 "$S/saker" $P --isl 128 --osl 4096 --ctx-beyond-train
}
echo "done (+$(( $(date +%s) - T0 )) s)"
