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
#   lay  the layout probe (w4.cuh SK_W4_TILEMAJOR): sw, s9, tm with row-major / tile-major binaries
#   m16, p16, kv16, tp, ncu16, co, l1  tx at 16 rows in the engine against the workbench (ITL by
#        SAKER_W4_TX_MODES16, per-op profile, PDL off, KV pool, matmul.cu's SAKER_W4_TM_PROBE,
#        ncu in each process, tx's carveout and L1 hints: the last two need w4_tx.cuh from
#        bench/results/data/s20_tx_l1_not_kept.diff)
#   a7   7B's o / down ADD picks through the engine
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
    tp) # kv16's follow-up: matmul.cu's SAKER_W4_TM_PROBE (graphs off): the first 3..32-row INT4
        # launch of each shape timed on the engine's own buffers and on fresh copies of each kind
        for m in 7 1; do
            timeout 300 env SAKER_NO_GRAPHS=1 SAKER_W4_TM_PROBE=1 SAKER_W4_TX_MODES16=$m "$S/saker" bench --device cuda \
                --shape llama2-70b --weights int4 --batch 16 --isl 128 --osl 8 > "$R/tp_m$m.log" 2>&1
            echo "m$m rc=$?"; grep -h "w4 tm probe" "$R/tp_m$m.log"
        done
        timeout 300 env SAKER_NO_GRAPHS=1 SAKER_W4_TM_PROBE=1 "$S/saker" bench --device cuda \
            --shape llama2-70b --weights int4 --batch 24 --isl 128 --osl 8 > "$R/tp_b24.log" 2>&1
        echo "b24 rc=$?"; grep -h "w4 tm probe" "$R/tp_b24.log"
        pack ;;
    ncu16) # tp's follow-up: the same tx launch (70B gate/up, SwiGLU cfg 7 at TP 16) is 100 us in the
        # engine process and 90.6 in the workbench's (same SASS, parameters, data, either stream):
        # ncu on each (whichever binary this call carries)
        M=gpu__time_duration.sum,launch__grid_size,launch__block_size,launch__shared_mem_per_block_dynamic
        M=$M,launch__shared_mem_per_block_static,launch__occupancy_limit_shared_mem,launch__waves_per_multiprocessor
        M=$M,sm__ctas_launched.sum,sm__ctas_launched.max,sm__ctas_launched.min,sm__warps_active.avg.pct_of_peak_sustained_active
        M=$M,sm__cycles_active.avg,sm__cycles_elapsed.avg,dram__throughput.avg.pct_of_peak_sustained_elapsed
        M=$M,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sector_hit_rate.pct
        M=$M,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed
        M=$M,"regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
        [ -n "$L1M" ] && M=gpu__time_duration.sum,launch__shared_mem_config_size,l1tex__t_sector_hit_rate.pct,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld_lookup_hit.sum,l1tex__m_xbar2l1tex_read_sectors.sum,lts__t_sectors_srcunit_tex_op_read.sum,sm__ctas_launched.sum
        KR="regex:sk_w4_tx_kernelILi16ELi1ELi3ELi1ELi2ELi12ELi2E"
        if [ -x "$S/saker" ]; then
            SAKER_NO_GRAPHS=1 SAKER_W4_TX_MODES16=7 step ncu_eng 300 ncu --clock-control none --kernel-name-base mangled \
                --metrics "$M" -k "$KR" --launch-skip 20 --launch-count 3 "$S/saker" bench --device cuda \
                --shape llama2-70b --weights int4 --batch 16 --isl 128 --osl 2
        else
            TM_TS=16 TM_SPBS=0 TM_TXCFG=7 TM_TXTP=16 step ncu_wb 300 ncu --clock-control none --kernel-name-base mangled --metrics "$M" -k "$KR" \
                --launch-skip 20 --launch-count 3 "$S/dev_gemv_w4" tm
        fi
        grep -h "gpu__time\|ctas_launched\|waves\|dram__\|cycles_active\|warps_active\|stalled_long\|stalled_wait\|bank\|hit_rate\|config_size\|l1tex\|lts__" "$R"/ncu_*.log | head -60 ;;
    co) # ncu16's follow-up: the same tx launch reads 36% more L2 sectors in the engine (same
        # instructions, same DRAM bytes): L1 caching. tx's preferred carveout (SAKER_W4_TX_CARVEOUT,
        # % of 228 KB: 0 = the smallest that fits its ~190 KB, i.e. 196 KB and 60 KB of L1; 100 =
        # 228 KB, 28 KB of L1), batch 16 all-tx against the default mask, and the probe's gate/up
        for r in 1 2; do
            dev_b1 70b16_m1_r$r llama2-70b 16
            for co in 0 100; do
                dev_b1 70b16_m7_co${co}_r$r llama2-70b 16 SAKER_W4_TX_MODES16=7 SAKER_W4_TX_CARVEOUT=$co
            done
            dev_b1 70b16_m7_r$r llama2-70b 16 SAKER_W4_TX_MODES16=7
            dev_b1 70b16_m1_co0_r$r llama2-70b 16 SAKER_W4_TX_CARVEOUT=0
        done
        for co in 0 100; do
            dev_b1 70b24_co$co llama2-70b 24 SAKER_W4_TX_CARVEOUT=$co
        done
        dev_b1 70b24_def llama2-70b 24
        for co in 0 100; do
            timeout 200 env SAKER_NO_GRAPHS=1 SAKER_W4_TM_PROBE=1 SAKER_W4_TX_MODES16=7 SAKER_W4_TX_CARVEOUT=$co "$S/saker" bench \
                --device cuda --shape llama2-70b --weights int4 --batch 16 --isl 128 --osl 2 > "$R/tp_co$co.log" 2>&1
            echo "probe carveout $co:"; grep -h "engine's buffers" "$R/tp_co$co.log"
        done
        pack ;;
    l1) # co's follow-up: tx's scale words with L1::evict_last and its x slice through cp.async.cg
        # (w4_tx.cuh): batch 16 all-tx against the default mask, batch 24 (all tx by default), the
        # probe's gate/up and down on tx (mask 7) and on tm (mask 1)
        for r in 1 2; do
            dev_b1 70b16_m1_r$r llama2-70b 16
            dev_b1 70b16_m7_r$r llama2-70b 16 SAKER_W4_TX_MODES16=7
        done
        dev_b1 70b24_def llama2-70b 24; dev_b1 7b16_m1 llama2-7b 16; dev_b1 7b16_m7 llama2-7b 16 SAKER_W4_TX_MODES16=7
        for m in 7 1; do
            timeout 200 env SAKER_NO_GRAPHS=1 SAKER_W4_TM_PROBE=1 SAKER_W4_TX_MODES16=$m "$S/saker" bench \
                --device cuda --shape llama2-70b --weights int4 --batch 16 --isl 128 --osl 2 > "$R/tp_l1_m$m.log" 2>&1
            echo "probe m$m:"; grep -h "engine's buffers" "$R/tp_l1_m$m.log"
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
