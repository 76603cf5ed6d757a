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
    m16) # the engine at batch 16 (70B INT4, 128/256): SAKER_W4_TX_MODES16 1 (the default: qkv on
        # tx) against 7 (all four on tx; faster in the workbench and its chain, 5% slower in the
        # engine since session 18): ITL with graphs, then per-op times (SAKER_PROFILE=1, graphs
        # off) and the step without graphs (SAKER_NO_GRAPHS=1), to see whether the tx launches
        # themselves are slower in the engine or only the captured step
        dev_b1 70b1_def llama2-70b 1
        for r in 1 2; do
            for m in 1 7; do dev_b1 70b16_m${m}_r$r llama2-70b 16 SAKER_W4_TX_MODES16=$m; done
        done
        for m in 1 7; do
            dev_b1 70b16_m${m}_nog llama2-70b 16 SAKER_W4_TX_MODES16=$m SAKER_NO_GRAPHS=1
            B1_TO=400 dev_b1 70b16_m${m}_prof llama2-70b 16 SAKER_W4_TX_MODES16=$m SAKER_PROFILE=1
            grep -h "tm\|tx\|matmul\|attn\|steps" "$R/b1_70b16_m${m}_prof.log" | head -40
        done ;;
    p16) # m16's follow-up: tx's launches were 13-18 us slower in the engine (eager, events around
        # each op) than in the workbench, tm's 2-5; the workbench times them on the legacy default
        # stream, the engine on its own non-blocking stream with PDL: the same with SAKER_PDL=0
        for m in 1 7; do
            dev_b1 70b16_m${m}_pdl0 llama2-70b 16 SAKER_W4_TX_MODES16=$m SAKER_PDL=0
            dev_b1 70b16_m${m}_pdl1 llama2-70b 16 SAKER_W4_TX_MODES16=$m
        done
        for m in 7 1; do
            B1_TO=400 dev_b1 70b16_m${m}_prof0 llama2-70b 16 SAKER_W4_TX_MODES16=$m SAKER_PROFILE=1 SAKER_PDL=0
            grep -h "^| dec .*T=16" "$R/b1_70b16_m${m}_prof0.log" | head -6
        done ;;
    kv16) # p16's follow-up: not PDL. The engine's footprint (weights 36 GB + a KV pool of 90% of
        # the free memory) against the workbench's (at most 36 GB): m1 / m7 with --kv-memory 0.05
        for r in 1 2; do
            for m in 1 7; do
                for kvm in 0.9 0.05; do
                    timeout 300 env SAKER_W4_TX_MODES16=$m "$S/saker" bench --device cuda --shape llama2-70b --weights int4 \
                        --batch 16 --isl 128 --osl 256 --kv-memory $kvm > "$R/kv_m${m}_${kvm}_r$r.log" 2>&1
                    echo "m$m kv $kvm r$r: $(grep -h '^| 128' "$R/kv_m${m}_${kvm}_r$r.log" | cut -d'|' -f6,11)"
                done
            done
        done
        pack ;;
    a7) # 7B's o / down at 1-2 rows: 128 blocks of 32 rows on 132 SMs (one an SM), where the
        # workbench (sessions 19, 20) has ADD 8 (D8 LB1) 17% faster on down at T = 1 and ADD 5
        # (D4 LB2) 24% at T = 2 than the pick (ADD 6, tuned on 70B's 256 blocks)
        for r in 1 2; do
            dev_b1 7b1_def_r$r llama2-7b 1
            dev_b1 7b1_add8_r$r llama2-7b 1 SAKER_W4_TQ_ADD=8
            dev_b1 7b1_add5_r$r llama2-7b 1 SAKER_W4_TQ_ADD=5
        done
        for v in 6 5 8; do dev_b1 7b2_add$v llama2-7b 2 SAKER_W4_TQ_ADD=$v; done
        dev_b1 13b1_def llama2-13b 1; dev_b1 13b1_add8 llama2-13b 1 SAKER_W4_TQ_ADD=8 ;;
    ck) for g in w4 carry norm_matmul fused; do
            step check_$g 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
