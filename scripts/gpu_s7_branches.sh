#!/bin/bash
# Session 7, one call for two branches written without a GPU in session 6, each against main's
# build in the same call:
#  fused-combine (SAKER_ATTN_FUSED_COMBINE=1): its workbench (checks + timing, fused rows), main's
#   workbench timing (the default kernels' registers changed on the branch), gpu_backend_ops
#   attention/decode with the switch, and the engine at batch 1 (main / branch / branch+switch);
#  w4-epi (ADD epilogues load before they store): dev_gemm_w4 check, the bn table on both builds,
#   gpu_backend_ops w4, the 70B INT4 engine at batch 139 on both.
# Here: build each branch's targets in build-gpu and strip them into .stage/{fc,we}; main's into
# .stage/{sk,m}; then tar cJf .stage/s7.txz -C .stage fc we sk m (the tree travels <= 64 MiB).
. "$(dirname "$0")/device_lib.sh"
mkdir -p /tmp/s7bin && tar xJf "${1:-.stage/s7.txz}" -C /tmp/s7bin
dev_init s7 .stage
export LD_LIBRARY_PATH=/tmp/s7bin/sk:/usr/local/cuda/lib64
B=/tmp/s7bin
step fc_all 200 "$B/fc/dev_attention_decode" all
step m_time 150 "$B/m/dev_attention_decode" time
step fc_bops_att 120 env SAKER_ATTN_FUSED_COMBINE=1 "$B/fc/gpu_backend_ops" attention
step fc_bops_dec 120 env SAKER_ATTN_FUSED_COMBINE=1 "$B/fc/gpu_backend_ops" decode
for isl in 128 4096; do
    F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl $isl --osl 128"
    step e1_${isl}_m 60 "$B/sk/saker" $F
    step e1_${isl}_fc 60 "$B/fc/saker" $F
    step e1_${isl}_fcon 60 env SAKER_ATTN_FUSED_COMBINE=1 "$B/fc/saker" $F
done
step we_check 200 "$B/we/dev_gemm_w4" check
step we_bn 100 "$B/we/dev_gemm_w4" bn 33,64,128,139,192
step m_bn 100 "$B/sk/dev_gemm_w4" bn 33,64,128,139,192
step we_bops 120 "$B/we/gpu_backend_ops" w4
F="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 128 --osl 256"
step e139_m 150 "$B/sk/saker" $F
step e139_we 150 "$B/we/saker" $F
echo "done (+$(( $(date +%s) - T0 )) s)"
