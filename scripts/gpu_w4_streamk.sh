#!/bin/bash
# First device call for the W4 wgmma GEMM's stream-K (w4_mma.cuh, session 6, written without a
# GPU; opt-in: SAKER_W4_SK=1 in the backend, split value SK_W4M_STREAMK in the launcher): the
# workbench checks (stream-K is one of the split options of every wgmma configuration), the bn
# table (its last column), gpu_backend_ops w4 with and without it, and the 70B INT4 engine at
# batch 139 and 64 with and without it; also `dev_gemm_w4 time`, issue 5's kernel table (1..4096
# rows against cuBLAS bf16) with session 6's picks. If it checks and wins where the tiles are fewer than the
# SMs (qkv, o, down), make it the default there (sk_w4g_run).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4, then
#   mkdir -p .stage/sk && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4 \
#     /lib/x86_64-linux-gnu/libgomp.so.1 .stage/sk/ && strip .stage/sk/saker .stage/sk/gpu_* \
#     .stage/sk/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init sk "${1:-.stage/sk}"
step check 200 "$S/dev_gemm_w4" check
step bn 100 "$S/dev_gemm_w4" bn 33,64,70,96,128,139,160,192
grep "\*" "$R/bn.log"
step bn7 100 env GW4_BN_MODEL=7b "$S/dev_gemm_w4" bn 33,64,96,128,160,192
step time 240 "$S/dev_gemm_w4" time
step bops_w4 120 "$S/gpu_backend_ops" w4
step bops_w4_sk 120 env SAKER_W4_SK=1 "$S/gpu_backend_ops" w4
for b in 64 139; do
    F="bench --device cuda --shape llama2-70b --weights int4 --batch $b --isl 128 --osl 256"
    step e$b 150 "$S/saker" $F
    step e${b}_sk 150 env SAKER_W4_SK=1 "$S/saker" $F
done
echo "done (+$(( $(date +%s) - T0 )) s)"
