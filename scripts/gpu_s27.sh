#!/bin/bash
# Session 27: (1) sk_w4_tb_kernel (gate/up at 1-2 rows) over stream-K ranges of (tile, stage)
# units (SAKER_W4_TB_SK; measured slower in the first call and removed: steps ck, eb, eab as run
# then); (2) the o GEMV's weights loaded while the decode attention runs: decode kernel 2 triggers
# o at its start where its grid is at most one block an SM (SAKER_ATTN_TRIG_LOOP=3) and o runs on
# tba with one block an SM and a ring of 8 (12) or 6 (13) stages (SAKER_W4_TQ_ADD_O), steps oc / oab
# (measured slower and removed: awq-speed.md session 27; the variables are gone from the code).
# Steps (STEPS):
#   ck    gpu_backend_ops groups (CKG, default w4 fused norm_matmul carry) under the default, and
#         w4 under SAKER_W4_TB_SK=0
#   eb    gpu_engine_batch with EBARGS (default "llama2-7b bf16 int4")
#   eab   the engine at AB_B (model:batch), AB_OLD (SAKER_W4_TB_SK=0) / the default / AB_V, two rounds
#   oc    gpu_backend_ops w4 under SAKER_W4_TQ_ADD_O=12 and 13, decode / attention / paged under
#         SAKER_ATTN_TRIG_LOOP=3; gpu_engine_batch under both (and ADD_O=12)
#   oab   the engine at AB_B, the default / AB_V's o variants, two rounds
#   ckw   (workbench stage) dev_gemv_w4 checksw (SwiGLU and STORE at T = 1, 2 against the double
#         reference; tb's shapes share tiles between blocks under stream-K)
#   sw    (workbench stage) dev_gemv_w4 sw and tail (gate/up at even and real tile counts) under
#         SAKER_W4_TB_SK=0 and 1
# Staging: .stage/s27 (s27_eng.txz: saker, gpu_backend_ops, gpu_engine_batch, libgomp) and
# .stage/s27w (s27_wb.txz: dev_gemv_w4), one call each:
#   STEPS="ck eb eab" bash scripts/gpu_s27.sh            (carry .stage/s27)
#   STEPS="ckw sw" TAG=w bash scripts/gpu_s27.sh .stage/s27w   (carry .stage/s27w)
. "$(dirname "$0")/device_lib.sh"
dev_init s27${TAG:-} "${1:-.stage/s27}"
ST=$S
for f in s27_eng.txz s27_wb.txz; do [ -f "$ST/$f" ] && { S=$ST; dev_unpack $f; }; done
STEPS=${STEPS:-"ck eb eab"}
STEP_PATTERN="FAIL\|RESULT\|checks\|runs,\|SUMMARY"
for st in $STEPS; do
    case $st in
    ck) for g in ${CKG:-w4 fused norm_matmul carry}; do
            step ck_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/ck_$g.log"
        done
        step ck_w4_sk0 300 env SAKER_W4_TB_SK=0 "$S/gpu_backend_ops" w4 bf16
        tail -1 "$R/ck_w4_sk0.log" ;;
    eb) step eb 500 "$S/gpu_engine_batch" ${EBARGS:-llama2-7b bf16 int4}
        tail -3 "$R/eb.log" ;;
    eab) AB_B=${AB_B:-"llama2-70b:1 llama2-7b:1 llama2-70b:2 llama2-7b:2 llama2-13b:1"} dev_eab SAKER_W4_TB_SK=0 ;;
    oc) for c in 12 13; do
            step oc_w4_$c 300 env SAKER_W4_TQ_ADD_O=$c "$S/gpu_backend_ops" w4 bf16
            tail -1 "$R/oc_w4_$c.log"
        done
        for g in decode attention paged; do
            step oc_${g}_t3 300 env SAKER_ATTN_TRIG_LOOP=3 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/oc_${g}_t3.log"
        done
        step oc_eb 500 env SAKER_ATTN_TRIG_LOOP=3 SAKER_W4_TQ_ADD_O=12 "$S/gpu_engine_batch" ${EBARGS:-llama2-7b bf16 int4}
        tail -1 "$R/oc_eb.log" ;;
    oab) AB_B=${AB_B:-"llama2-70b:1 llama2-70b:2 llama2-7b:1"} \
         AB_V=${AB_V-"SAKER_ATTN_TRIG_LOOP=3 SAKER_W4_TQ_ADD_O=12 SAKER_ATTN_TRIG_LOOP=3+SAKER_W4_TQ_ADD_O=12 SAKER_ATTN_TRIG_LOOP=3+SAKER_W4_TQ_ADD_O=13 SAKER_ATTN_TRIG_LOOP=3+SAKER_W4_TQ_ADD_O=9"} \
         dev_eab SAKER_NOOP=2 ;;
    ckw) step ckw 400 "$S/dev_gemv_w4" checksw
         grep "checks\|FAIL\|runs" "$R/ckw.log" | tail -5 ;;
    sw) for sk in 0 1; do
            step sw_sk$sk 400 env SAKER_W4_TB_SK=$sk "$S/dev_gemv_w4" sw
            grep -A12 "^Best ts" "$R/sw_sk$sk.log"
            step tail_sk$sk 300 env SAKER_W4_TB_SK=$sk "$S/dev_gemv_w4" tail
            grep "^| " "$R/tail_sk$sk.log" | grep -i "gate\|up" | head -12
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
