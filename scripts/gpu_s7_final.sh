#!/bin/bash
# Session 7, last call: (1) gpu_backend_ops w4 with g128x128 at 5 stages (the backend's pick at
# 97-128 and 193-256 rows), and decode with SAKER_ATTN_NS forced to 1 and 3 (the override's
# correctness); (2) 70B INT4 at batch 128 and 256 (128/256), this build against the build before
# the stage change (.stage/fin/old/saker); (3) batch-1 decode with the split count forced
# (SAKER_ATTN_NS: the plan is made for the whole context, n_ctx), 70B at 128/128 and 2048/128,
# 7B at 128/128. Prediction: (2) 1-3% off the ITL at 128 and 256; (3) if batch-1 attention is
# launch-bound, 1 split (no combine kernel) saves ~5 us a layer at 128/128 (~0.4 ms a token).
. "$(dirname "$0")/device_lib.sh"
dev_init fin "${1:-.stage/fin}"
step bops_w4 100 "$S/gpu_backend_ops" w4
step bops_dec_ns1 100 env SAKER_ATTN_NS=1 "$S/gpu_backend_ops" decode
step bops_dec_ns3 100 env SAKER_ATTN_NS=3 "$S/gpu_backend_ops" decode
for b in 128 256; do
    F="bench --device cuda --shape llama2-70b --weights int4 --batch $b --isl 128 --osl 256"
    step e${b}_old 150 "$S/old/saker" $F
    step e${b}_new 150 "$S/saker" $F
done
for isl in 128 2048; do
    F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl $isl --osl 128"
    step b1_${isl}_def 60 "$S/saker" $F
    for ns in 1 2 4 8; do step b1_${isl}_ns$ns 60 env SAKER_ATTN_NS=$ns "$S/saker" $F; done
done
F="bench --device cuda --shape llama2-7b --weights int4 --batch 1 --isl 128 --osl 128"
step b7_def 60 "$S/saker" $F
step b7_ns1 60 env SAKER_ATTN_NS=1 "$S/saker" $F
step b7_ns2 60 env SAKER_ATTN_NS=2 "$S/saker" $F
echo "done (+$(( $(date +%s) - T0 )) s)"
