#!/bin/bash
# Session 19: where a decode GEMV's time goes, by taking parts of it away (w4.cuh SK_W4_PROBE, a
# build-time switch of the workbench only): the same dev_gemv_w4 built three ways, one binary a
# call (a stripped dev_gemv_w4 is 33 MB; two do not travel together):
#   p0  SK_W4_PROBE=0, the kernels as they are (build-gpu)
#   p1  SK_W4_PROBE=1, "loads only": the MMA steps reduced to an XOR of their weight and scale
#       words (loads, rings, x prologue, epilogue and the ranges' reduction stay)
#   p2  SK_W4_PROBE=2, "math only": every weight load redirected into 4 KB of its 64 KB window
#       (the weights come from L2; the scale words still from DRAM)
# rs2w / rs2e: sk_w4_ts_kernel with its ring filled by producer warps / TMA (w4.cuh; not kept:
#   bench/results/data/s19_ts_producer_not_kept.diff, s19_ts_tma_not_kept.diff; rs2w needs the
#   workbench built with one of them applied), workbench / engine. p24: tx's bound-24 picks
#   (s19_tx_pick24_not_kept.diff) against bound 32's in the engine.
# chtm: dev_gemv_w4 chaintm (needs this session's workbench) against the engine's ordering.
# Steps (STEPS): prb  s9 (qkv / o / down at T = 1, 2), sw (gate/up at T = 1, 2), tm at 16 rows
#   (TM_TS=16, tx's own ranges); log names carry TAG (p0 / p1 / p2).
# Here: cmake -S . -B build-pN -DCMAKE_BUILD_TYPE=Release -DSAKER_CUDA=ON -DSAKER_STATIC_DEPS=ON
#   -DCMAKE_CUDA_FLAGS=-DSK_W4_PROBE=N; cmake --build build-pN --target dev_gemv_w4; stage the
#   stripped binary as .stage/s19pN/s19_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
TAG=${TAG:-p0}
dev_init s19$TAG "${1:-.stage/s19$TAG}"
dev_unpack s19_bin.tgz
STEPS=${STEPS:-"prb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs\|tm sum\|copy ceiling"
for st in $STEPS; do
    case $st in
    prb) step s9_$TAG 240 "$S/dev_gemv_w4" s9
        grep -h "backend's launch" "$R/s9_$TAG.log" | head -20
        step sw_$TAG 200 "$S/dev_gemv_w4" sw
        grep -h "backend's launch" "$R/sw_$TAG.log" | head -20
        TM_TS=16 TM_SPBS=0 step tm_$TAG 300 "$S/dev_gemv_w4" tm
        grep -h "tm sum.*T=16" "$R/tm_$TAG.log" ;;
    ncu) # ncu (clocks free) on the backend's T = 1 kernels (prof2: qkv, o, gate/up, down, three
        # launches each; the second of each) and on tm / tx at 16 rows (proftm: o then gate/up; tm
        # three launches, then tx TP 16 configurations 1 and 4 (o) / 3 (gate/up), then TP 32)
        M=smsp__inst_executed.sum,sm__cycles_elapsed.avg,sm__cycles_active.avg,gpu__time_duration.sum
        M=$M,smsp__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed
        M=$M,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
        M=$M,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active
        M=$M,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__throughput.avg.pct_of_peak_sustained_active
        M=$M,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum
        M=$M,l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed,smsp__warps_active.avg.per_cycle_active
        M=$M,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_requests_srcunit_tex_op_read.sum
        M=$M,"regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
        step ncu_b1_$TAG 300 ncu --clock-control none --metrics "$M" -k "regex:sk_w4_t[qs]_kernel" \
            --launch-skip 0 --launch-count 12 "$S/dev_gemv_w4" prof2
        step ncu_16_$TAG 300 ncu --clock-control none --metrics "$M" -k "regex:sk_w4_t[mx]_kernel" \
            --launch-skip 0 --launch-count 40 "$S/dev_gemv_w4" proftm
        grep -c "sk_w4" "$R/ncu_b1_$TAG.log" "$R/ncu_16_$TAG.log" ;;
    rs2w) # the ts kernel's ring filled by a producer warp (RS2, configurations 9..12): the SwiGLU
        # checks (checksw: every configuration, T = 1, 2, with and without the norm), then sw
        step checksw_$TAG 300 "$S/dev_gemv_w4" checksw
        grep -h "FAIL" "$R/checksw_$TAG.log" | head -20
        step sw_$TAG 300 "$S/dev_gemv_w4" sw
        grep -h -A30 "Best ts configuration" "$R/sw_$TAG.log" ;;
    rs2e) # the engine's gate/up on RS2 (SAKER_W4_TQ_SW) against the default (2), alternating; the
        # backend checks with RS2 forced
        if [ -x "$S/gpu_backend_ops" ]; then
            for g in w4 carry norm_matmul; do
                SAKER_W4_TQ_SW=${SW:-9} step check_${g}_$TAG 300 "$S/gpu_backend_ops" $g bf16
                tail -1 "$R/check_${g}_$TAG.log"
            done
        fi
        for r in 1 2; do
            for sw in 2 ${SWS:-9 10 11 12}; do dev_b1 70b1_sw${sw}_r$r llama2-70b 1 SAKER_W4_TQ_SW=$sw; done
        done
        for sw in 2 ${SWS:-9 10 11 12}; do
            dev_b1 70b2_sw$sw llama2-70b 2 SAKER_W4_TQ_SW=$sw
            dev_b1 7b1_sw$sw llama2-7b 1 SAKER_W4_TQ_SW=$sw
        done ;;
    chtm) # dev_gemv_w4 chaintm (the 70B layer's four products in a graph through the backend's
        # 3..32-row entry): at 16 rows under the SAKER_W4_TX_MODES16 settings session 18 compared in
        # the engine (batch 16 ITL: 1 18.02, 0 18.21, 3 18.31, 5 18.54, 7 18.91 ms): does the chain
        # order them as the engine did, where products timed alone did not?
        for m in 1 0 3 5 7 1; do
            SAKER_W4_TX_MODES16=$m CHAIN_TS=16 step chtm16_m$m 150 "$S/dev_gemv_w4" chaintm
            grep -h "chaintm T" "$R/chtm16_m$m.log"
        done
        CHAIN_TS=24,32 step chtm24 150 "$S/dev_gemv_w4" chaintm
        grep -h "chaintm T" "$R/chtm24.log" ;;
    e16) # the engine at 16 rows: tx for every product at 9..16 rows (SAKER_W4_TX_MODES16=7)
        # against qkv only (1, the default), with and without the attention (SAKER_SKIP=attn): is
        # tx's loss in the engine (session 18), which the GEMV chain alone does not show, an
        # interaction with the attention's kernels?
        for r in 1 2; do
            for m in 1 7; do
                dev_b1 70e16_m${m}_r$r llama2-70b 16 SAKER_W4_TX_MODES16=$m
                dev_b1 70e16_m${m}_noattn_r$r llama2-70b 16 SAKER_W4_TX_MODES16=$m SAKER_SKIP=attn
            done
        done ;;
    chtm80) # the same chain over 80 layers of distinct weights (the 70B model's 36 GB, as the
        # engine streams them) against 8 (3.6 GB): qkv only on tx at 16 rows (1) against all (7)
        for r in 1 2; do
            for m in 1 7; do
                for nl in 80 8; do
                    CHAIN_NL=$nl SAKER_W4_TX_MODES16=$m CHAIN_TS=16 step chtm_nl${nl}_m${m}_r$r 200 "$S/dev_gemv_w4" chaintm
                    grep -h "chaintm T" "$R/chtm_nl${nl}_m${m}_r$r.log"
                done
            done
        done ;;
    clk) # the engine at 16 rows, qkv only on tx (1) against all (7), with the SM clock and the
        # power sampled every 50 ms (nvidia-smi) during each run: is tx's loss in the engine
        # (which the chain of GEMVs does not show) the clock the GPU holds over a long run?
        for r in 1 2; do
            for m in 1 7; do
                nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 50 \
                    > "$R/clk_m${m}_r$r.csv" 2>&1 &
                SP=$!
                dev_b1 70clk_m${m}_r$r llama2-70b 16 SAKER_W4_TX_MODES16=$m
                kill $SP
                awk -F', ' '{gsub(/ MHz/,"",$2); gsub(/ W/,"",$3); if ($3+0 > 200) {n++; c+=$2; w+=$3}} END {if (n) printf "  busy samples %d: SM clock %.0f MHz, power %.0f W\n", n, c/n, w/n}' "$R/clk_m${m}_r$r.csv"
                pack
            done
        done ;;
    ck) # the session's final product binary: the backend's INT4 checks
        for g in w4 carry norm_matmul fused; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    p24) # tx's picks at bound 24 (17..24 rows; w4_tm.cu tx_pick) against bound 32's
        # (SAKER_W4_TX_PICK24=0), alternating, two rounds
        for r in 1 2; do
            for b in ${BATCHES:-24 20}; do
                dev_b1 70p24_b${b}_r$r llama2-70b $b A=1
                dev_b1 70p32_b${b}_r$r llama2-70b $b SAKER_W4_TX_PICK24=0
            done
        done
        for b in 24 20; do
            dev_b1 7p24_b$b llama2-7b $b A=1
            dev_b1 7p32_b$b llama2-7b $b SAKER_W4_TX_PICK24=0
        done
        dev_b1 70p24_b1 llama2-70b 1 A=1 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
