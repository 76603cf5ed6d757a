#!/bin/bash
# Session 16: the INT4 decode GEMV at 3..16 rows (w4_tm.cuh, w4_tm.cu).
#  wb    dev_gemv_w4 checktm (every configuration against the double reference), then tm (the
#        70B / 7B products at 4..16 rows: each configuration, cuBLASLt bf16, the T = 4 kernel).
#  ck    gpu_backend_ops w4, norm_matmul, fused, carry (the backend's paths at 1..1024 rows).
#  eng   saker bench 70B / 7B INT4 at batch 5, 8, 12, 16 (128/256): w4_tm (default) against
#        SAKER_W4_TM_MIN=0 (the tile kernels, as before), alternating.
#  cfg   70B batch 8 and 16 with each SAKER_W4_TM_CFG.
#  e2e   stories260K RTN g32 (.stage/s15q/st260_rtn, session 15's), saker logits of 1..16-token
#        prompts on CUDA (with and without w4_tm) against the CPU.
#  fin   the final binary: 70B batch 8, 16, 12 and 7B batch 8, 16 against SAKER_W4_TM_MIN=0; 70B batch 1.
#  edge  where w4_tm ends: 70B batch 16, 17, 24, 32 and 7B 16, 17, 32 (17+ rows: the tile kernels).
#  low   3 and 4 rows: w4_tm (default) against the T <= 4 kernel (SAKER_W4_TM_MIN=5), 70B and 7B.
#  eb    gpu_engine_batch smollm2-135m / llama2-7b INT4: batched steps against requests alone.
# Here: cmake --build build-gpu --target dev_gemv_w4 (wb) / saker_cli gpu_backend_ops (ck, eng);
#   stage the stripped binaries + libgomp as .stage/NAME/s16_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s16 "${1:-.stage/s16}"
dev_unpack s16_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs,\|tm sum"
for st in $STEPS; do
    case $st in
    wb) step checktm 300 "$S/dev_gemv_w4" checktm
        grep -h "FAIL" "$R/checktm.log" | head -20
        step tm 400 "$S/dev_gemv_w4" tm
        grep -h "tm sum\|copy" "$R/tm.log" | head -12 ;;
    ck) for g in w4 norm_matmul fused carry; do
            step check_$g 300 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    eng) for b in 8 16 5 12; do
            for i in 1 2; do
                dev_b1 70tm_b${b}_$i llama2-70b $b A=1
                dev_b1 70old_b${b}_$i llama2-70b $b SAKER_W4_TM_MIN=0
            done
            dev_b1 7tm_b$b llama2-7b $b A=1
            dev_b1 7old_b$b llama2-7b $b SAKER_W4_TM_MIN=0
        done ;;
    e2e) # real weights: stories260K RTN g32 (its q/k/v/o INT4, K = 64), prompts of 1..16 tokens:
        # the CUDA logits (w4_tm at 3..16 rows, then the old path) against the CPU's
        Q=$PWD/.stage/s15q/st260_rtn
        for n in 1 2 3 5 8 9 12 16; do
            toks=$(python3 -c "print(','.join(['1'] + [str((i * 37 + 11) % 512) for i in range($n - 1)]))")
            "$S/saker" logits -m "$Q" --tokens "$toks" -o "$R/l_cpu_$n.f32" --device cpu > /dev/null 2>&1
            "$S/saker" logits -m "$Q" --tokens "$toks" -o "$R/l_cuda_$n.f32" --device cuda > /dev/null 2>&1
            SAKER_W4_TM_MIN=0 "$S/saker" logits -m "$Q" --tokens "$toks" -o "$R/l_old_$n.f32" --device cuda > /dev/null 2>&1
            echo "e2e $n tokens: cuda vs cpu $(python3 scripts/cmp_logits2.py "$R/l_cuda_$n.f32" "$R/l_cpu_$n.f32" 512); old path vs cpu $(python3 scripts/cmp_logits2.py "$R/l_old_$n.f32" "$R/l_cpu_$n.f32" 512)"
        done | tee "$R/e2e.log"
        pack ;;
    eb) # batched decode (3..16 rows) against each request alone (1 row), synthetic INT4
        step eb_smol 300 "$S/gpu_engine_batch" smollm2-135m bf16 int4
        tail -3 "$R/eb_smol.log"
        step eb_7b 300 "$S/gpu_engine_batch" llama2-7b bf16 int4
        tail -3 "$R/eb_7b.log" ;;
    fin) for b in 8 16 12; do
            for i in 1 2; do
                dev_b1 70fin_b${b}_$i llama2-70b $b A=1
                dev_b1 70finold_b${b}_$i llama2-70b $b SAKER_W4_TM_MIN=0
            done
        done
        for b in 8 16; do dev_b1 7fin_b$b llama2-7b $b A=1; dev_b1 7finold_b$b llama2-7b $b SAKER_W4_TM_MIN=0; done
        dev_b1 70fin_b1 llama2-70b 1 A=1 ;;
    edge) for b in 16 17 24 32; do dev_b1 70edge_b$b llama2-70b $b A=1; done
        for b in 16 17 32; do dev_b1 7edge_b$b llama2-7b $b A=1; done ;;
    low) for b in 3 4; do
            for i in 1 2; do
                dev_b1 70low_b${b}_$i llama2-70b $b A=1
                dev_b1 70lowtc_b${b}_$i llama2-70b $b SAKER_W4_TM_MIN=5
            done
            dev_b1 7low_b$b llama2-7b $b A=1
            dev_b1 7lowtc_b$b llama2-7b $b SAKER_W4_TM_MIN=5
        done ;;
    cfg) for b in 8 16; do for c in 1 2 3 4; do dev_b1 70cfg${c}_b$b llama2-70b $b SAKER_W4_TM_CFG=$c; done; done ;;
    esac
done
echo "total $(( $(date +%s) - T0 )) s"
