#!/bin/bash
# Session 17: the INT4 decode GEMV at 9..32 rows with x resident in shared memory (w4_tx.cuh).
#  wb    dev_gemv_w4 checktm (tm and tx, every configuration, against the double reference),
#        then tm (the 70B / 7B products at 4..32 rows: tm and tx configurations, cuBLASLt bf16).
#  ck    gpu_backend_ops w4, norm_matmul, fused, carry (the backend's paths at 1..1024 rows).
#  eng   saker bench 70B / 7B INT4 at batch 24, 32, 16 (128/256): tx (default) against
#        SAKER_W4_TX_MIN=0 (session 16's: tm at 9..16, the tile kernels past 16), alternating.
#  eng2  the same at 70B batch 17, 20, 28, 12, 24 again; 70B batch 1.
#  cfg   70B batch 16 and 32 with each SAKER_W4_TX_CFG.
#  mask  70B batch 24 with tx for some products only (SAKER_W4_TX_MODES: 1 qkv, 2 o / down,
#        4 gate/up), the rest on the tile kernels.
#  prof  ncu on dev_gemv_w4 proftm (70B o and gate/up: tm at 16 rows, tx at 16 and 32).
#  edge  where tx ends: 70B batch 32, 33 (the tile kernels from 33 rows), 48.
#  pick  70B batch 24 with the tile kernels' other picks (SAKER_W4_PICK=8, SAKER_W4_BN=0).
#  model the W4 tile kernels' model picks from 17 rows (SAKER_W4_MODEL_MIN, default 17; 33 before):
#        70B batch 17, 24, 32 and 7B 24 against 33; 70B batch 24 with other tx masks.
#  eb    gpu_engine_batch smollm2-135m / llama2-7b INT4: batched steps against requests alone.
#  fin   the final binary: 70B at batch 12..32 and 7B at 16, 24, 32 against SAKER_W4_TX_MIN=0;
#        70B batch 24 with other SAKER_W4_TX_MODES masks; 70B batch 1 and 8.
# Here: cmake --build build-gpu --target dev_gemv_w4 (wb) / saker_cli gpu_backend_ops (ck, eng);
#   stage the stripped binaries + libgomp as .stage/NAME/s17_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s17 "${1:-.stage/s17}"
dev_unpack s17_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs\|tm sum"
for st in $STEPS; do
    case $st in
    wb) step checktm 300 "$S/dev_gemv_w4" checktm
        grep -h "FAIL" "$R/checktm.log" | head -20
        step tm 500 "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm.log" | head -30 ;;
    ck) for g in w4 norm_matmul fused carry; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    eng) for b in 24 32 16; do
            dev_b1 70tx_b${b} llama2-70b $b A=1
            dev_b1 70old_b${b} llama2-70b $b SAKER_W4_TX_MIN=0
        done
        for b in 24 32; do
            dev_b1 7tx_b$b llama2-7b $b A=1
            dev_b1 7old_b$b llama2-7b $b SAKER_W4_TX_MIN=0
        done ;;
    eng2) for b in 17 20 28; do
            dev_b1 70tx_b${b} llama2-70b $b A=1
            dev_b1 70old_b${b} llama2-70b $b SAKER_W4_TX_MIN=0
        done
        dev_b1 70tx_b12 llama2-70b 12 A=1
        dev_b1 70old_b12 llama2-70b 12 SAKER_W4_TX_MIN=0
        dev_b1 70tx_b24r llama2-70b 24 A=1
        dev_b1 70old_b24r llama2-70b 24 SAKER_W4_TX_MIN=0
        dev_b1 70_b1 llama2-70b 1 A=1 ;;
    prof) # ncu on tm (16 rows) and tx (16, 32 rows): what bounds them (clocks free, as session 14)
        step prof 300 ncu --clock-control none --section SpeedOfLight --section WarpStateStats \
            --section ComputeWorkloadAnalysis --section Occupancy --section LaunchStats \
            --section MemoryWorkloadAnalysis_Tables -k regex:"sk_w4_t[mx]_kernel" "$S/dev_gemv_w4" proftm ;;
    mask) # (masks 1 and 3 first ran with a bug, fixed after: the fused norm's test asked in STORE
        # mode, so gate/up at 17..32 rows went to the T <= 4 kernel with its gamma)
        for m in 7 1 2 4 6 5 3; do dev_b1 70m${m}_b24 llama2-70b 24 SAKER_W4_TX_MODES=$m; done
        dev_b1 70m0_b24 llama2-70b 24 SAKER_W4_TX_MIN=0 ;;
    edge) for b in 32 33 48; do dev_b1 70edge_b$b llama2-70b $b A=1; done ;;
    pick) # the tile kernels' other picks at 24 rows (run inline in the session, same commands)
        dev_b1 p8_old llama2-70b 24 SAKER_W4_TX_MIN=0 SAKER_W4_PICK=8
        dev_b1 bn0_old llama2-70b 24 SAKER_W4_TX_MIN=0 SAKER_W4_BN=0
        dev_b1 p8_tx llama2-70b 24 SAKER_W4_PICK=8
        dev_b1 p8_tx7 llama2-70b 24 SAKER_W4_PICK=8 SAKER_W4_TX_MODES=7 ;;
    model) # the tile kernels' model picks from 17 rows (was 33): against SAKER_W4_MODEL_MIN=33
        for b in 24 17 32; do
            dev_b1 70mod_b$b llama2-70b $b A=1
            dev_b1 70mod33_b$b llama2-70b $b SAKER_W4_MODEL_MIN=33
        done
        dev_b1 70modtiles_b24 llama2-70b 24 SAKER_W4_TX_MIN=0
        dev_b1 70mod7_b24 llama2-70b 24 SAKER_W4_TX_MODES=7
        dev_b1 70mod0_b24 llama2-70b 24 SAKER_W4_TX_MODES=0
        dev_b1 7mod_b24 llama2-7b 24 A=1
        dev_b1 7mod33_b24 llama2-7b 24 SAKER_W4_MODEL_MIN=33 ;;
    eb) step eb_smol 300 "$S/gpu_engine_batch" smollm2-135m bf16 int4
        tail -3 "$R/eb_smol.log"
        step eb_7b 300 "$S/gpu_engine_batch" llama2-7b bf16 int4
        tail -3 "$R/eb_7b.log" ;;
    cfg) for b in 16 32; do for c in 1 2 3 4; do dev_b1 70cfg${c}_b$b llama2-70b $b SAKER_W4_TX_CFG=$c; done; done ;;
    fin) for b in 24 32 17 20 28 16 12; do
            dev_b1 70fin_b$b llama2-70b $b A=1
            dev_b1 70finold_b$b llama2-70b $b SAKER_W4_TX_MIN=0
        done
        for m in 7 1 3; do dev_b1 70finm${m}_b24 llama2-70b 24 SAKER_W4_TX_MODES=$m; done
        for b in 24 32 16; do
            dev_b1 7fin_b$b llama2-7b $b A=1
            dev_b1 7finold_b$b llama2-7b $b SAKER_W4_TX_MIN=0
        done
        dev_b1 70fin_b1 llama2-70b 1 A=1
        dev_b1 70fin_b8 llama2-70b 8 A=1 ;;
    esac
done
echo "total $(( $(date +%s) - T0 )) s"
