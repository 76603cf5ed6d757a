#!/bin/bash
# Session 7: decode kernel 2's split cap (SK_AD_SPLIT_CAP 8; SAKER_ATTN_SPLIT_CAP=0 restores the
# rule alone) - the workbench checks, gpu_backend_ops decode/attention, and the engine at batch 1
# (70B and 7B INT4) and batch 4 (70B) over contexts of 256 to 4,096 tokens, with and without it.
# Prediction (second form, cap max(8, ceil(len / 256))): 70B b1 2,048 ~14.4 ms against 14.8; 3,968 no slower than without; 256 tokens ~1% faster.
. "$(dirname "$0")/device_lib.sh"
dev_init cap "${1:-.stage/cap}"
step check 150 "$S/dev_attention_decode" check
step bops_dec 100 "$S/gpu_backend_ops" decode
step bops_att 100 "$S/gpu_backend_ops" attention
for m in llama2-70b:1 llama2-70b:4 llama2-7b:1; do
    IFS=: read -r model b <<< "$m"
    for isl in 128 2048 3968; do
        [ "$model" = llama2-7b ] && [ "$isl" = 3968 ] && continue
        F="bench --device cuda --shape $model --weights int4 --batch $b --isl $isl --osl 128"
        step ${model}_b${b}_${isl}_cap 60 "$S/saker" $F
        step ${model}_b${b}_${isl}_nocap 60 env SAKER_ATTN_SPLIT_CAP=0 "$S/saker" $F
    done
done
echo "done (+$(( $(date +%s) - T0 )) s)"
