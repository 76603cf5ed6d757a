#!/bin/bash
# Session 26: the decode kernel brings the next products' weights into L2 (prefetch_next;
# sk_attn_params.l2; SAKER_ATTN_L2NEXT 0 off (default) / 1 after the wait / 2 at the start /
# 3 after the chunk loop; SAKER_ATTN_L2NEXT_MB, SAKER_ATTN_L2AFTER_MB). Written while no GPU was
# lent: the first call of the next session runs `STEPS="ck eb eab"`.
# Steps (STEPS):
#   ck    gpu_backend_ops decode (the model's steps; asserts the hint was taken) under
#         SAKER_ATTN_L2NEXT 0, 1, 2, 3 (bf16), and attention / paged under 1 (unchanged paths)
#   eb    gpu_engine_batch with EBARGS (default "llama2-7b bf16 int4") under SAKER_ATTN_L2NEXT=1
#   wb    (s26_wb.txz: dev_gemv_w4, dev_attention_decode) the o / qkv / down GEMVs with weights
#         rotated past L2 and with one copy (S9_HOT=1: o read from L2, the prefetch's ceiling);
#         dev_attention_decode check under AD_L2NEXT=1 (outputs unchanged with 50 MB prefetched),
#         and its timing of the small-batch shapes under AD_L2NEXT 0..3 (what the traffic costs)
#   eab   the engine at AB_B (model:batch), AB_OLD (default SAKER_ATTN_L2NEXT=0) / the default /
#         each of AB_V (a variant's variables joined by +), two rounds
# Staging: .stage/s26 (s25_eng.txz: saker, gpu_backend_ops, gpu_engine_batch, libgomp) for
# ck / eb / eab; .stage/s26w (s26_wb.txz, 38 MB: too much to travel with the other) for wb:
#   STEPS=wb bash scripts/gpu_s26.sh .stage/s26w   (carry .stage/s26w)
. "$(dirname "$0")/device_lib.sh"
dev_init s26${TAG:-} "${1:-.stage/s26}"
STG=$S
dev_unpack s25_eng.txz
[ -f "$STG/s26_wb.txz" ] && { tar xf "$STG/s26_wb.txz" -C "$S" || exit 1; }
STEPS=${STEPS:-"ck eb eab"}
STEP_PATTERN="FAIL\|RESULT\|checks\|SUMMARY\|into L2"
# o on tba (SAKER_W4_TQ_ADD=9 moves o only at 70B batch 1: down is there already) may read L2 better
AB_V=${AB_V-"SAKER_ATTN_L2NEXT=1 SAKER_ATTN_L2NEXT=2 SAKER_ATTN_L2NEXT=3 SAKER_ATTN_L2NEXT=1+SAKER_ATTN_L2AFTER_MB=0 SAKER_ATTN_L2NEXT=1+SAKER_ATTN_L2AFTER_MB=32 SAKER_ATTN_L2NEXT=1+SAKER_W4_TQ_ADD=9"}
for st in $STEPS; do
    case $st in
    ck) for l2 in 0 1 2 3; do
            step ck_decode_l2$l2 300 env SAKER_ATTN_L2NEXT=$l2 "$S/gpu_backend_ops" decode bf16
            tail -1 "$R/ck_decode_l2$l2.log"
        done
        for g in attention paged; do
            step ck_${g}_l21 300 env SAKER_ATTN_L2NEXT=1 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/ck_${g}_l21.log"
        done ;;
    wb) step wb_s9_cold 200 "$S/dev_gemv_w4" s9
        step wb_s9_hot 200 env S9_HOT=1 "$S/dev_gemv_w4" s9
        grep -h "^| 70B o\|^| 7B o" "$R/wb_s9_cold.log" "$R/wb_s9_hot.log" | tail -8
        step wb_ad_check 300 env AD_NO_MQ=1 AD_L2NEXT=1 "$S/dev_attention_decode" check
        tail -2 "$R/wb_ad_check.log"
        for l2 in 0 1 2 3; do
            step wb_ad_time_l2$l2 200 env AD_NO_MQ=1 AD_L2NEXT=$l2 \
                AD_SHAPES="b1x256,b116x192,b64x4096" "$S/dev_attention_decode" time
        done ;;
    eb) step eb 500 env SAKER_ATTN_L2NEXT=1 "$S/gpu_engine_batch" ${EBARGS:-llama2-7b bf16 int4}
        tail -3 "$R/eb.log" ;;
    eab) AB_B=${AB_B:-"llama2-70b:1 llama2-7b:1 llama2-70b:2 llama2-70b:8 llama2-70b:64"} dev_eab SAKER_ATTN_L2NEXT=0 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
