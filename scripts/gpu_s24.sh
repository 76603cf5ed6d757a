#!/bin/bash
# Session 24: sk_w4_tb_kernel as a STORE product (qkv at 1-2 rows: pairs of 16-row tiles,
# stream-K over (pair, stage) units; tq STORE configurations 9..12).
# Steps (STEPS):
#   ckw   dev_gemv_w4 checksw: SwiGLU and STORE at T = 1, 2 (ts / tb, tq 9..12) against the double
#         reference, shapes where blocks share pairs among them
#   wck   dev_gemv_w4 check: every configuration
#   s9    dev_gemv_w4 s9: qkv / o / down, tq configurations 5..8 against tbs 9..12 (ADD: tba 9..11)
#   s9n   the same with qkv without the fused norm (S9_NONORM=1: as the engine runs it)
#   eab   the engine at AB_B (model:batch), AB_OLD (default SAKER_W4_TQ_STORE=5: the session-23
#         pick at one row) / the new default / each of AB_V, two rounds
#   eb    gpu_engine_batch with EBARGS
#   ck    gpu_backend_ops groups (CKG) with CKENV
# Staging: .stage/s24 (s24_bin.txz: dev_gemv_w4; s24_eng.txz: the engine's binaries).
. "$(dirname "$0")/device_lib.sh"
dev_init s24${TAG:-} "${1:-.stage/s24}"
ST=$S
for f in s24_bin.txz s24_eng.txz; do [ -f "$ST/$f" ] && { S=$ST; dev_unpack $f; }; done
STEPS=${STEPS:-"ckw s9"}
STEP_PATTERN="FAIL\|RESULT\|checks:\|SUMMARY"
for st in $STEPS; do
    case $st in
    ckw) step ckw 400 "$S/dev_gemv_w4" checksw
         grep "checks\|FAIL" "$R/ckw.log" | head -20 ;;
    wck) step wck 500 "$S/dev_gemv_w4" check
         grep "checks\|FAIL" "$R/wck.log" | head -20 ;;
    s9) step s9 400 "$S/dev_gemv_w4" s9
        grep -A20 "^Best tq" "$R/s9.log" ;;
    s9n) step s9n 400 env S9_NONORM=1 "$S/dev_gemv_w4" s9
        grep -A20 "^Best tq" "$R/s9n.log" ;;
    eab) for round in 1 2; do
            for mb in ${AB_B:-llama2-70b:1 llama2-7b:1 llama2-70b:2}; do
                m=${mb%%:*} b=${mb##*:}
                dev_b1 ${m}_b${b}_old_r$round $m $b ${AB_OLD:-SAKER_W4_TQ_STORE=5}
                dev_b1 ${m}_b${b}_new_r$round $m $b SAKER_NOOP=1
                for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=]/_}_r$round $m $b $v; done
            done
         done ;;
    eb) [ -x "$S/gpu_engine_batch" ] || exit 1
        step eb 400 "$S/gpu_engine_batch" $EBARGS
        tail -3 "$R/eb.log" ;;
    ck) for g in ${CKG:-w4 fused}; do
            step check_${g}${TAG} 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_${g}${TAG}.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
