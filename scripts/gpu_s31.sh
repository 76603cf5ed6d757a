#!/bin/bash
# Session 31. Steps (STEPS):
#   eab   (as gpu_s30.sh) saker_old against saker at AB_B over ROUNDS, variants AB_V
#   tm    dev_gemv_w4 tm at TM_TS (default 16) rows: every 3..32-row configuration (tm, tx) with
#         copy and cuBLASLt bf16 in the same run
#   tmck  dev_gemv_w4 checktm (tm and tx against the double reference)
#   ev    the staged saker alone at AB_B: the default, then each variant of AB_V
#   ops   gpu_backend_ops CKG groups (default w4) under each of OPS_V
# Staging (this machine): NAME/s30_all.txz with the stripped binaries (saker_old and libgomp).
# Next (session 32), which 70B product's shared memory moves batch 16 (w4_tx.cuh probes), e.g.
#   STEPS=ev AB_B="llama2-70b:16" AB_V="SAKER_W4_TX_PAD=0:8192:768 SAKER_W4_TX_PAD=1:8192:768
#     SAKER_W4_TX_PAD=2:8192:768 SAKER_W4_TX_PAD=1:28672:768 SAKER_W4_TX_SPB=0:8192:16" \
#     bash scripts/gpu_s31.sh .stage/s31g
. "$(dirname "$0")/device_lib.sh"
dev_init s31${TAG:-} "${1:-.stage/s30f}"
dev_unpack s30_all.txz
STEPS=${STEPS:-"eab"}
STEP_PATTERN="FAIL\|RESULT\|checks\|runs,\|SUMMARY"
for st in $STEPS; do
    case $st in
    tm) step tm 500 env TM_TS=${TM_TS:-16} "$S/dev_gemv_w4" tm
        grep "^| .* 16 \|copy\|tm sum" "$R/tm.log" | grep -v "^| .*spb" | head -60 ;;
    tmck) step tmck 500 "$S/dev_gemv_w4" checktm
        grep "checks\|runs\|FAIL" "$R/tmck.log" | head -20 ;;
    ev) for round in ${ROUNDS:-1 2}; do # the new binary alone: default, then each of AB_V
            for mb in ${AB_B:-llama2-70b:16}; do
                m=${mb%%:*} b=${mb##*:}
                dev_b1 ${m}_b${b}_def_r$round $m $b SAKER_NOOP=1
                for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=,+]/_}_r$round $m $b ${v//+/ }; done
            done
         done ;;
    ops) for g in ${CKG:-w4}; do # gpu_backend_ops groups under each of OPS_V (variables joined by +)
            for v in ${OPS_V:-SAKER_NOOP=1}; do
                step ops_${g}_${v//[=,+]/_} 400 env ${v//+/ } "$S/gpu_backend_ops" $g bf16
                tail -1 "$R/ops_${g}_${v//[=,+]/_}.log"; grep FAIL "$R/ops_${g}_${v//[=,+]/_}.log" | head -5
            done
         done ;;
    eab) for round in ${ROUNDS:-1 2}; do
            for mb in ${AB_B:-llama2-70b:1}; do
                m=${mb%%:*} b=${mb##*:}
                SAKER_BIN=$S/saker_old dev_b1 ${m}_b${b}_old_r$round $m $b SAKER_NOOP=1
                dev_b1 ${m}_b${b}_new_r$round $m $b SAKER_NOOP=1
                for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=,+]/_}_r$round $m $b ${v//+/ }; done
            done
         done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
