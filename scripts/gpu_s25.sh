#!/bin/bash
# Session 25: the decode step's RoPE + K/V store folded into the decode attention kernel
# (sk_attn_params.nt; SAKER_ATTN_NEWTOK=0 keeps the separate rope/store launch).
# Steps (STEPS):
#   ck    gpu_backend_ops groups (CKG, default attention paged decode rope) with SAKER_ATTN_NEWTOK
#         1, 2 and 0, and attention with SAKER_ATTN_MQ=0 (kernel 2 at every group) under each
#   eb    gpu_engine_batch with EBARGS (default "llama2-7b bf16 int4")
#   eab   the engine at AB_B (model:batch), AB_OLD (default SAKER_ATTN_NEWTOK=0) / the new default
#         / each of AB_V (a variant's
#         variables joined by +), two rounds
# Staging: .stage/s25 (s25_eng.txz: saker, gpu_backend_ops, gpu_engine_batch, libgomp).
. "$(dirname "$0")/device_lib.sh"
dev_init s25${TAG:-} "${1:-.stage/s25}"
for f in s25_eng.txz; do [ -f "$S/$f" ] && dev_unpack $f; done
STEPS=${STEPS:-"ck eab"}
STEP_PATTERN="FAIL\|RESULT\|checks\|SUMMARY"
for st in $STEPS; do
    case $st in
    ck) for nt in 1 2 0; do
            for g in ${CKG:-attention paged decode rope}; do
                step ck_${g}_nt$nt 300 env SAKER_ATTN_NEWTOK=$nt "$S/gpu_backend_ops" $g bf16
                tail -1 "$R/ck_${g}_nt$nt.log"
            done
            step ck_attention_mq0_nt$nt 300 env SAKER_ATTN_NEWTOK=$nt SAKER_ATTN_MQ=0 \
                "$S/gpu_backend_ops" attention bf16
            tail -1 "$R/ck_attention_mq0_nt$nt.log"
        done ;;
    eb) step eb 500 "$S/gpu_engine_batch" ${EBARGS:-llama2-7b bf16 int4}
        tail -3 "$R/eb.log" ;;
    eab) AB_B=${AB_B:-"llama2-70b:1 llama2-7b:1 llama2-70b:2 llama2-70b:8"} dev_eab SAKER_ATTN_NEWTOK=0 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
