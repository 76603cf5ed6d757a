#!/bin/bash
# Session 21: tx's engine-only loss at 9..32 rows (session 20: the same launch 10-28% slower in
# the engine's process than in the workbench's, same SASS, buffers, carveout; +36% L2->L1
# sectors). Steps (STEPS):
#   ck   gpu_backend_ops groups (CKG) with CKENV
#   ab   the engine at batch 1: SAKER_ATTN_ROPE_DEC / SAKER_ATTN_PDL=4 against the default
#   dg   the workbench's tm at 16 rows (tm and tx, spb 0) with TM_DUMMY_GB 0 / 40 / 100 held
#        (alternating): does the process's device-memory footprint slow tx (address translation)?
# Staging: the stripped binary as .stage/s21/s21_bin.tgz (one big binary a call).
. "$(dirname "$0")/device_lib.sh"
dev_init s21${TAG:-} "${1:-.stage/s21}"
for f in s21_bin.txz s21_bin.tgz; do [ -f "$S/$f" ] && dev_unpack $f; done
STEPS=${STEPS:-"dg"}
STEP_PATTERN="checks,\|FAIL\|failures\|RESULT\|runs\|copy ceiling\|tm sum 70B T=16\|tm sum 7B T=16"
for st in $STEPS; do
    case $st in
    dg) for d in ${DGS:-0 100 0 40 100}; do
            TM_DUMMY_GB=$d TM_TS=16 TM_SPBS=0 step tm_d${d}_$((++n)) ${DG_TO:-200} "$S/dev_gemv_w4" tm
        done
        grep -h "tm sum.*T=16\|DUMMY" "$R"/tm_d*.log ;;
    ck) # the product binary's checks with the session's switches (CKENV, e.g.
        # SAKER_ATTN_ROPE_DEC=1 SAKER_ATTN_PDL=4): the attention groups, then the rest
        for g in ${CKG:-attention paged decode rope fused}; do
            step check_${g}${TAG} 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_${g}${TAG}.log"
        done ;;
    ab) # the engine at batch 1 (128/256): SAKER_ATTN_ROPE_DEC 0 against 1 (the rope/store kernel's
        # work in the decode kernel); with P4 set also SAKER_ATTN_PDL=4 (the combine triggering o
        # early: first call only, mode removed after it); two rounds, 70B then 7B (SHAPES), BATCHES
        for sh in ${SHAPES:-llama2-70b llama2-7b}; do
            for b in ${BATCHES:-1}; do
                for r in 1 2; do
                    for v in ${RDS:-0 1}; do dev_b1 ${sh}_b${b}_rd${v}_r$r $sh $b SAKER_ATTN_ROPE_DEC=$v; done
                    [ -n "$P4" ] && dev_b1 ${sh}_b${b}_p4_r$r $sh $b SAKER_ATTN_PDL=4
                    [ -n "$P4" ] && dev_b1 ${sh}_b${b}_both_r$r $sh $b SAKER_ATTN_ROPE_DEC=1 SAKER_ATTN_PDL=4
                done
            done
        done ;;
    eb) # gpu_engine_batch (staged apart as s21_eb.txz) with CKENV: the engine's in-flight batching
        # against lone sessions, smollm2-135m bf16 and EBARGS
        tar xf "$PWD/.stage/s21/s21_eb.txz" -C "$S"
        step eb${TAG} 400 env $CKENV "$S/gpu_engine_batch" $EBARGS
        tail -2 "$R/eb${TAG}.log" ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
