#!/bin/bash
# Session 30: the tile-major q4 layout (src/backend/cuda/w4_layout.h). Steps (STEPS):
#   wck   dev_gemv_w4 check, checksw, checktm: every decode GEMV configuration (tc, tq, ts, tb,
#         tba, tbs, tm, tx, the bk experiment) against the double reference on the row-major
#         host copy
#   gck   dev_gemm_w4 check: every MMA configuration (mma.sync, wgmma, the TMA tiles' 4-D map)
#   ck    gpu_backend_ops groups (CKG, default w4 fused carry norm_matmul) bf16 (fp16 with CKF16)
#   sw    dev_gemv_w4 sw and s9: gate/up (tb) and qkv / o / down timings with copy in the run
#   swb   sw and s9 under SAKER_W4_TB_BULK 1 (the default: tb / tba / tbs weight boxes by plain
#         bulk copies) and 0 (the 3-D tensor map)
#   eab   (AB_V: variants of the new binary, variables joined by +) the engine, saker_old (session 29's binary, row-major q4) against saker, 128/256 at
#         AB_B (default 70B b1, 7B b1, 70B b2, 70B b16, 70B b64), two rounds
# Staging (this machine): NAME/s30_all.txz with the stripped binaries, saker_old and libgomp.
. "$(dirname "$0")/device_lib.sh"
dev_init s30${TAG:-} "${1:-.stage/s30}"
dev_unpack s30_all.txz
STEPS=${STEPS:-"wck gck ck"}
STEP_PATTERN="FAIL\|RESULT\|checks\|runs,\|SUMMARY"
for st in $STEPS; do
    case $st in
    wck) for m in ${WCK:-check checksw checktm}; do
            step wck_$m 400 "$S/dev_gemv_w4" $m
            grep "checks\|FAIL" "$R/wck_$m.log" | head -30
         done ;;
    gck) step gck 500 "$S/dev_gemm_w4" check
         grep "checks\|FAIL\|worst" "$R/gck.log" | head -30 ;;
    ck) for g in ${CKG:-w4 fused carry norm_matmul}; do
            for t in bf16 ${CKF16:+fp16}; do
                step ck_${g}_$t 400 "$S/gpu_backend_ops" $g $t
                tail -1 "$R/ck_${g}_$t.log"
                grep "FAIL" "$R/ck_${g}_$t.log" | head -5
            done
        done ;;
    swb) for bk in 1 0; do # the TMA-fed GEMVs' weight boxes by plain bulk copies (1) or the map (0)
            step sw_bulk$bk 400 env SAKER_W4_TB_BULK=$bk "$S/dev_gemv_w4" sw
            grep -A12 "^Best" "$R/sw_bulk$bk.log"
            step s9_bulk$bk 400 env SAKER_W4_TB_BULK=$bk "$S/dev_gemv_w4" s9
            grep -A16 "^Best tq" "$R/s9_bulk$bk.log"
         done ;;
    sw) step sw 400 "$S/dev_gemv_w4" sw
        grep -A12 "^Best" "$R/sw.log"
        step s9 400 "$S/dev_gemv_w4" s9
        grep -A20 "^Best tq" "$R/s9.log" ;;
    eab) for round in ${ROUNDS:-1 2}; do
            for mb in ${AB_B:-llama2-70b:1 llama2-7b:1 llama2-70b:2 llama2-70b:16 llama2-70b:64}; do
                m=${mb%%:*} b=${mb##*:}
                SAKER_BIN=$S/saker_old dev_b1 ${m}_b${b}_old_r$round $m $b SAKER_NOOP=1
                dev_b1 ${m}_b${b}_new_r$round $m $b SAKER_NOOP=1
                for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=,+]/_}_r$round $m $b ${v//+/ }; done
            done
         done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
