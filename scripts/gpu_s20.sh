#!/bin/bash
# Session 20: the decode GEMVs at 1-2 rows with more warps an SM (w4.cuh: tq 9..11 of each mode,
# ts 9..12; RS1 rings, registers capped by the blocks an SM). Session 19's probe had the T = 1
# products bound by latency with 4 warps a scheduler (loads alone and math alone each near the
# whole time, no pipe busy); sessions 10-14 never ran ts above 16 warps an SM.
# Steps (STEPS):
#   wb   dev_gemv_w4 checksw (every ts configuration), sw (gate/up, T = 1, 2), s9 (qkv / o / down),
#        then check (every kernel incl. the new tq ones) under its time limit
#   eng  the engine (saker bench, 70B INT4 batch 1, 128/256), default against SAKER_W4_TQ_SW /
#        _ADD / _STORE picks (SWS, ADDS, STS), two rounds alternating, then batch 2 and 7B
#   ck   gpu_backend_ops w4 / carry / norm_matmul / fused (the product binary's checks), with
#        the env given in CKENV
# Staging: the stripped binary as .stage/s20/s20_bin.tgz (one big binary a call).
. "$(dirname "$0")/device_lib.sh"
dev_init s20${TAG:-} "${1:-.stage/s20}"
dev_unpack s20_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs\|copy ceiling"
for st in $STEPS; do
    case $st in
    wb) step checksw 240 "$S/dev_gemv_w4" checksw
        grep -h "FAIL" "$R/checksw.log" | head -10
        step sw 300 "$S/dev_gemv_w4" sw
        grep -h -A40 "Best ts configuration" "$R/sw.log"
        step s9 300 "$S/dev_gemv_w4" s9
        grep -h -A24 "Best tq configuration" "$R/s9.log"
        [ -n "$CHECK_ALL" ] && step check 300 "$S/dev_gemv_w4" check && grep -h "FAIL" "$R/check.log" | head ;;
    lay) # the layout probe (w4.cuh SK_W4_TILEMAJOR): sw, s9 and tm at 16 rows with this call's
        # binary (TAG: rm = row-major, the product layout; tm = tile-major addressing), KEEP=1 first
        # copies the binary to /tmp/s20keep (for the next call on the same machine), AGAIN=1 then
        # runs the kept one again (A / B / A on one machine)
        [ -n "$KEEP" ] && mkdir -p /tmp/s20keep && cp "$S/dev_gemv_w4" /tmp/s20keep/
        for b in "$S/dev_gemv_w4" ${AGAIN:+/tmp/s20keep/dev_gemv_w4}; do
            tg=$TAG; [ "$b" = /tmp/s20keep/dev_gemv_w4 ] && tg=${TAG}_kept
            step sw_$tg 200 "$b" sw
            grep -h "backend's launch" "$R/sw_$tg.log" | grep "| 0 |" | head -8
            step s9_$tg 200 "$b" s9
            grep -h "backend's launch" "$R/s9_$tg.log" | grep "| 0 |" | head -12
            TM_TS=16 TM_SPBS=0 step tm_$tg 300 "$b" tm
            grep -h "tm sum.*T=16" "$R/tm_$tg.log"
        done ;;
    eng) for r in 1 2; do
            dev_b1 70b1_def_r$r llama2-70b 1
            for v in ${SWS:-}; do dev_b1 70b1_sw${v}_r$r llama2-70b 1 SAKER_W4_TQ_SW=$v; done
            for v in ${ADDS:-}; do dev_b1 70b1_add${v}_r$r llama2-70b 1 SAKER_W4_TQ_ADD=$v; done
            for v in ${STS:-}; do dev_b1 70b1_st${v}_r$r llama2-70b 1 SAKER_W4_TQ_STORE=$v; done
            [ -n "$ALLENV" ] && dev_b1 70b1_all_r$r llama2-70b 1 $ALLENV
        done
        if [ -n "$ALLENV" ]; then
            dev_b1 70b2_def llama2-70b 2; dev_b1 70b2_all llama2-70b 2 $ALLENV
            dev_b1 7b1_def llama2-7b 1; dev_b1 7b1_all llama2-7b 1 $ALLENV
        fi ;;
    ck) for g in w4 carry norm_matmul fused; do
            step check_$g 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
