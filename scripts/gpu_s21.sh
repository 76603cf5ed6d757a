#!/bin/bash
# Session 21: tx's engine-only loss at 9..32 rows (session 20: the same launch 10-28% slower in
# the engine's process than in the workbench's, same SASS, buffers, carveout; +36% L2->L1
# sectors). Steps (STEPS):
#   ck   gpu_backend_ops groups (CKG) with CKENV
#   al   the engine before / after the 128-byte dynamic shared memory base of the W4 GEMVs
#   al2  the new 9..16-row default and prefill base against saker_old
#   al3  the same at batches 2..128 with the tile kernels' base too
#   src  ncu SourceCounters of tx's gate/up launch in the engine or the workbench
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
        [ -x "$S/gpu_engine_batch" ] || tar xf "$PWD/.stage/s21/s21_eb.txz" -C "$S"
        step eb${TAG} 400 env $CKENV "$S/gpu_engine_batch" $EBARGS
        tail -2 "$R/eb${TAG}.log" ;;
    src) # tx's engine-only loss, per instruction: the same launch (70B gate/up, SwiGLU cfg 7 at TP
        # 16, the 21st) under ncu's SourceCounters in the engine (saker staged) or the workbench
        # (dev_gemv_w4 staged), then its SASS-level page as CSV and the section's details
        ncu --version | tail -1
        KR="regex:sk_w4_tx_kernelILi16ELi1ELi3ELi1ELi2ELi12ELi2E"
        NCU="ncu --clock-control none --kernel-name-base mangled -k $KR --launch-skip 20 --launch-count 1"
        NCU="$NCU --section SourceCounters --section MemoryWorkloadAnalysis_Tables --section LaunchStats"
        if [ -x "$S/saker" ]; then
            w=eng; SAKER_NO_GRAPHS=1 SAKER_W4_TX_MODES16=7 step ncusrc_$w 420 $NCU -o "$R/src_$w" "$S/saker" \
                bench --device cuda --shape llama2-70b --weights int4 --batch 16 --isl 128 --osl 2
        else
            w=wb; TM_TS=16 TM_SPBS=0 TM_TXCFG=7 TM_TXTP=16 step ncusrc_$w 300 $NCU -o "$R/src_$w" "$S/dev_gemv_w4" tm
        fi
        ncu -i "$R/src_$w.ncu-rep" --page details --print-details all > "$R/details_$w.txt" 2>&1
        ncu -i "$R/src_$w.ncu-rep" --page source --csv --print-source sass > "$R/sass_$w.csv" 2>&1
        rm -f "$R/src_$w.ncu-rep"; pack
        grep -i "sector\|uncoalesced\|excessive\|L1\|duration" "$R/details_$w.txt" | head -40
        wc -l "$R/sass_$w.csv"; head -3 "$R/sass_$w.csv" | cut -c1-600 ;;
    al) # the dynamic shared memory base at 128 bytes (w4.cuh tq/ts, w4_tm.cuh, w4_tx.cuh): the
        # product binary before (saker_old, staged in the same archive) against after, alternating;
        # batch 1 (70B, 7B), 16 (default mask and all-tx), 24 (tx by default)
        for r in 1 2; do
            for v in old new; do
                bin="$S/saker"; [ $v = old ] && bin="$S/saker_old"
                SAKER_BIN=$bin dev_b1 70b1_${v}_r$r llama2-70b 1
                SAKER_BIN=$bin dev_b1 7b1_${v}_r$r llama2-7b 1
                SAKER_BIN=$bin dev_b1 70b16_${v}_r$r llama2-70b 16
                SAKER_BIN=$bin dev_b1 70b16m7_${v}_r$r llama2-70b 16 SAKER_W4_TX_MODES16=7
                SAKER_BIN=$bin dev_b1 70b24_${v}_r$r llama2-70b 24
                [ $r = 1 ] && SAKER_BIN=$bin dev_b1 7b16_${v}_r$r llama2-7b 16
                [ $r = 1 ] && SAKER_BIN=$bin dev_b1 7b16m7_${v}_r$r llama2-7b 16 SAKER_W4_TX_MODES16=7
            done
        done ;;
    al2) # the new defaults (all-tx at 9..16 rows for the large products, the prefill kernels'
        # 128-byte base) against saker_old (the session's start), alternating: batches 9, 12, 16 on
        # 70B, 16 on 7B, batch 1, and a 2,048-token prefill (TTFT) on 7B
        for r in 1 2; do
            for v in old new; do
                bin="$S/saker"; [ $v = old ] && bin="$S/saker_old"
                for b in 9 12 16; do SAKER_BIN=$bin dev_b1 70b${b}_${v}_r$r llama2-70b $b; done
                SAKER_BIN=$bin dev_b1 7b16_${v}_r$r llama2-7b 16
                SAKER_BIN=$bin dev_b1 70b1_${v}_r$r llama2-70b 1
                timeout 200 "$bin" bench --device cuda --shape llama2-7b --weights int4 --batch 1 --isl 2048 \
                    --osl 8 > "$R/pf_7b_${v}_r$r.log" 2>&1
                echo "pf_7b_${v}_r$r rc=$? TTFT p50 ms: $(grep -h '^| 2048' "$R/pf_7b_${v}_r$r.log" | cut -d'|' -f8)"
                timeout 200 "$bin" bench --device cuda --shape llama2-70b --weights int4 --batch 4 --isl 2048 \
                    --osl 8 > "$R/pf_70b_${v}_r$r.log" 2>&1
                echo "pf_70b_${v}_r$r rc=$? TTFT p50 ms: $(grep -h '^| 2048' "$R/pf_70b_${v}_r$r.log" | cut -d'|' -f8)"
                pack
            done
        done ;;
    al3) # the 128-byte base on the tile kernels' ring too (w4_mma.cuh sk_w4m) and the static x
        # buffers of tc / tq RS0 (w4.cuh): the final binary against saker_old at the batches the
        # others take (2..8: tq / ts / tm; 32..128: tx and the tile kernels), alternating
        for r in 1 2; do
            for v in old new; do
                bin="$S/saker"; [ $v = old ] && bin="$S/saker_old"
                for b in ${AL3B:-2 4 8 32 48 64 128}; do SAKER_BIN=$bin dev_b1 70b${b}_${v}_r$r llama2-70b $b; done
                SAKER_BIN=$bin dev_b1 7b64_${v}_r$r llama2-7b 64
            done
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
