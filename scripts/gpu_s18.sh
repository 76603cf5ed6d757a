#!/bin/bash
# Session 18: sk_w4_tx_kernel's instruction diet (no integer division a step, one MMA chain a
# tile) and configurations with 12-16 warps an SM (w4_tx.cuh).
#  wb    dev_gemv_w4 checktm (tm and tx, every configuration, against the double reference),
#        then tm at 8..32 rows (TM_TS), tx's own range lengths and 8, 16 (TM_SPBS).
#  ck    gpu_backend_ops w4, norm_matmul, fused, carry.
#  eng   saker bench 70B / 7B INT4 (128/256): the default against SAKER_W4_TX_MIN=0, alternating;
#        70B with tx for o and down past 16 rows too (SAKER_W4_TX_MODES=7).
#  fin   the final binary's engine points against no tx.
#  eb    gpu_engine_batch smollm2-135m / llama2-7b INT4.
# Here: cmake --build build-gpu --target dev_gemv_w4 (wb) / saker_cli gpu_backend_ops (ck, eng);
#   stage the stripped binaries + libgomp as .stage/NAME/s18_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s18 "${1:-.stage/s18}"
dev_unpack s18_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs\|tm sum"
for st in $STEPS; do
    case $st in
    wb) step checktm 400 "$S/dev_gemv_w4" checktm
        grep -h "FAIL" "$R/checktm.log" | head -20
        TM_TS=${TM_TS:-8,12,16,24,32} TM_SPBS=${TM_SPBS:-0,8,16} step tm 500 "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm.log" | head -30 ;;
    tm) TM_TS=${TM_TS:-8,12,16,24,32} TM_SPBS=${TM_SPBS:-0,8,16} step tm 500 "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm.log" | head -30 ;;
    wb2) # the ranges' partials added by clusters of the ranges (SAKER_W4_TX_CLUSTER) against the
        # counter's last block: checktm runs both; tm times both (TM_CLU=0,1)
        step checktm2 300 "$S/dev_gemv_w4" checktm
        grep -h "FAIL" "$R/checktm2.log" | head -20
        TM_TS=${TM_TS:-12,16,24,32} TM_SPBS=${TM_SPBS:-0} TM_CLU=0,1 step tm2 ${TM_TO:-270} "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm2.log" | head -30 ;;
    clu) # the engine with the clusters (default) against the counter
        for b in ${BATCHES:-24 32 16 20 12}; do
            dev_b1 70clu_b${b} llama2-70b $b A=1
            dev_b1 70cnt_b${b} llama2-70b $b SAKER_W4_TX_CLUSTER=0
        done
        for b in ${BATCHES7:-24 32}; do
            dev_b1 7clu_b${b} llama2-7b $b A=1
            dev_b1 7cnt_b${b} llama2-7b $b SAKER_W4_TX_CLUSTER=0
        done
        for m in 7 5 3 1; do dev_b1 70clu_m16_${m}_b16 llama2-70b 16 SAKER_W4_TX_MODES16=$m; done ;;
    tq) # the tq steady loop (branch wt-tq18, a helper's, written without a GPU): the workbench's
        # checks of the T <= 4 kernels, its per-product timing at T = 1, 2 (s9), the backend checks
        step check_tq 300 "$S/dev_gemv_w4" check
        grep -h "FAIL" "$R/check_tq.log" | head -20
        step s9_tq 200 "$S/dev_gemv_w4" s9
        grep -h "^| 70B\|^| 7B" "$R/s9_tq.log" | head -60
        for g in w4 norm_matmul fused carry; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    tqe) # the engine at batch 1 / 2: the session's binary before the steady loop (saker_old)
        # against after, alternating
        for r in 1 2 3; do
            for v in old new; do
                b=saker; [ $v = old ] && b=saker_old
                SAKER_BIN=$S/$b dev_b1 70b1_${v}_r$r llama2-70b 1 A=1
            done
        done
        for v in old new; do
            b=saker; [ $v = old ] && b=saker_old
            SAKER_BIN=$S/$b dev_b1 70b2_$v llama2-70b 2 A=1
            SAKER_BIN=$S/$b dev_b1 7b1_$v llama2-7b 1 A=1
            SAKER_BIN=$S/$b dev_b1 7b2_$v llama2-7b 2 A=1
            SAKER_BIN=$S/$b dev_b1 70b8_$v llama2-70b 8 A=1
        done ;;
    tp24) # tx's row bound 24 at 17..24 rows: checktm (Tr 20, 24 at bound 24), tm at 24 rows
        # (tx at bounds 24 and 32), the backend checks
        step checktm3 300 "$S/dev_gemv_w4" checktm
        grep -h "FAIL" "$R/checktm3.log" | head -20
        TM_TS=24 TM_SPBS=0 step tm3 200 "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm3.log" | head -30 ;;
    tp24e) # the backend checks, then the engine at 17..24 rows: bound 24 (default) against 32
        # (SAKER_W4_TX_TP24=0)
        for g in w4 norm_matmul fused carry; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done
        for b in 24 20 17; do
            dev_b1 70tp24_b${b} llama2-70b $b A=1
            dev_b1 70tp32_b${b} llama2-70b $b SAKER_W4_TX_TP24=0
        done
        for b in 24 20; do
            dev_b1 7tp24_b${b} llama2-7b $b A=1
            dev_b1 7tp32_b${b} llama2-7b $b SAKER_W4_TX_TP24=0
        done
        dev_b1 70tp_b32 llama2-70b 32 A=1
        dev_b1 70tp_b16 llama2-70b 16 A=1 ;;
    bk24) # decode steps of 17..24 rows padded to 24 (a new bucket) against 32 (SAKER_BUCKET_24=0);
        # gpu_engine_batch first (batched steps of 3..24 rows against each request alone)
        step eb_smol 200 "$S/gpu_engine_batch" smollm2-135m bf16 int4
        tail -1 "$R/eb_smol.log"
        step eb_7b 200 "$S/gpu_engine_batch" llama2-7b bf16 int4
        tail -1 "$R/eb_7b.log"
        for b in 24 20 17; do
            dev_b1 70bk24_b${b} llama2-70b $b A=1
            dev_b1 70bk32_b${b} llama2-70b $b SAKER_BUCKET_24=0
        done
        dev_b1 7bk24_b24 llama2-7b 24 A=1
        dev_b1 7bk32_b24 llama2-7b 24 SAKER_BUCKET_24=0
        dev_b1 70bk_b32 llama2-70b 32 A=1 ;;
    prof) # ncu (clocks free) on single tx launches at 16 rows: which stalls bound them (the stall
        # metrics were added after this session's run: its log has none). Each
        # timing is 170 launches; the shapes run in the order 70B qkv, o, gate/up, down, so the
        # skip picks the product (ncu's function-name filter cannot tell the instances apart).
        for spec in o1:1:175 o6:6:175 o7:7:175 q1:1:5 g7:7:345 d6:6:515; do
            nm=${spec%%:*}; rest=${spec#*:}; cfg=${rest%%:*}; sk=${rest#*:}
            TM_TS=16 TM_SPBS=0 TM_TXCFG=$cfg step prof_$nm 120 ncu --clock-control none --section SpeedOfLight \
                --section WarpStateStats --section ComputeWorkloadAnalysis --section Occupancy \
                --section LaunchStats --section MemoryWorkloadAnalysis_Tables --section SchedulerStats \
                --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio \
                --launch-skip $sk --launch-count 1 -k regex:sk_w4_tx "$S/dev_gemv_w4" tm
            grep -h "sk_w4_tx_kernel<\|Duration\|DRAM Throughput\|Executed Ipc A\|Warp Cycles Per Issued\|Registers Per\|Achieved Active\|Stall\|No Eligible" "$R/prof_$nm.log" | cut -c1-150
        done ;;
    ck) for g in w4 norm_matmul fused carry; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    eng) for b in ${BATCHES:-16 24 32 12}; do
            dev_b1 70new_b${b} llama2-70b $b A=1
            dev_b1 70old_b${b} llama2-70b $b SAKER_W4_TX_MIN=0
        done
        for b in ${BATCHES_M7:-24 32}; do
            dev_b1 70m7_b${b} llama2-70b $b SAKER_W4_TX_MODES=7
        done
        for b in ${BATCHES7:-16 32}; do
            dev_b1 7new_b$b llama2-7b $b A=1
            dev_b1 7old_b$b llama2-7b $b SAKER_W4_TX_MIN=0
        done ;;
    m16) # which products take tx at 9..16 rows (SAKER_W4_TX_MODES16: 1 qkv, 2 o / down, 4 gate/up)
        for b in ${BATCHES:-16 12}; do
            for m in 1 0 5 3 7 1; do dev_b1 70m16_${m}_b${b} llama2-70b $b SAKER_W4_TX_MODES16=$m; done
        done
        for m in 1 0 5 7; do dev_b1 7m16_${m}_b16 llama2-7b 16 SAKER_W4_TX_MODES16=$m; done
        for b in 24 32; do
            dev_b1 70def_b${b} llama2-70b $b A=1
            dev_b1 70m5_b${b} llama2-70b $b SAKER_W4_TX_MODES=5
        done
        dev_b1 7def_b24 llama2-7b 24 A=1
        dev_b1 7m5_b24 llama2-7b 24 SAKER_W4_TX_MODES=5 ;;
    fin) # the final binary: 70B at batch 12..32 and 7B at 16, 24, 32 against SAKER_W4_TX_MIN=0
        # (no tx); 70B batch 1 and 8
        for b in 24 32 16 12 20; do
            dev_b1 70fin_b${b} llama2-70b $b A=1
            dev_b1 70fin0_b${b} llama2-70b $b SAKER_W4_TX_MIN=0
        done
        for b in 24 32 16; do
            dev_b1 7fin_b${b} llama2-7b $b A=1
            dev_b1 7fin0_b${b} llama2-7b $b SAKER_W4_TX_MIN=0
        done
        dev_b1 70fin_b1 llama2-70b 1 A=1
        dev_b1 70fin_b8 llama2-70b 8 A=1 ;;
    b1) # 70B batch 1: gate/up's ts configuration now that its input comes carried (normed) from
        # the o GEMV (session 15): session 14 measured the RS1 rings (5-7) 6% faster than the default
        # (2) without the fused norm, slower with it, before the carry existed
        for r in 1 2; do
            for sw in 2 5 6 7 4; do dev_b1 70b1_sw${sw}_r$r llama2-70b 1 SAKER_W4_TQ_SW=$sw; done
        done
        for sw in 2 6; do dev_b1 7b1_sw$sw llama2-7b 1 SAKER_W4_TQ_SW=$sw; done ;;
    eb) step eb_smol 300 "$S/gpu_engine_batch" smollm2-135m bf16 int4
        tail -3 "$R/eb_smol.log"
        step eb_7b 300 "$S/gpu_engine_batch" llama2-7b bf16 int4
        tail -3 "$R/eb_7b.log" ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
