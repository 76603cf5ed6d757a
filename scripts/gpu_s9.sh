#!/bin/bash
# Session 9: the W4 GEMM pick from the cost model (sk_w4m_pick_model) with the wn/wc/wr tiles.
#  bops:   gpu_backend_ops w4 (every backend W4 path against the CPU; the picks exercise the new
#          tiles), then under compute-sanitizer memcheck;
#  table:  dev_gemm_w4 time at the issue's row counts, the backend's pick only (GW4_CFGS=none);
#  ab70:   engine, Llama-2-70B INT4 128/256 at batch 72, 139, 256: model against
#          SAKER_W4_PICK=8 (session 8's rules), same binary;
#  ab7:    the same for Llama-2-7B INT4 at batch 64, 128, 256;
#  p4096:  the issue's 128/4096 point at the largest batch.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4; mkdir -p
#   .stage/s9 && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/s9/ && strip .stage/s9/{saker,gpu_backend_ops,dev_gemm_w4}
# On the device (carry .stage/s9): STEPS="bops table ab70 ab7" bash scripts/gpu_s9.sh
. "$(dirname "$0")/device_lib.sh"
dev_init s9 "${1:-.stage/s9}"
STEPS=${STEPS:-"bops table ab70 ab7"}
STEP_PATTERN="FAIL\|checks\|ERROR\|^| 128\|RESULT\|ITL"
for st in $STEPS; do
    case $st in
    bops) step bops_w4 200 stdbuf -oL "$S/gpu_backend_ops" w4 ;;
    memcheck) step bops_w4_cs 120 compute-sanitizer --tool memcheck "$S/gpu_backend_ops" w4 ;;
    p128) # the issue's 128/128 point at the largest batch
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
        step p128 200 "$S/saker" $F --isl 128 --osl 128 ;;
    table) step table 200 env GW4_CFGS=none stdbuf -oL "$S/dev_gemm_w4" time 1,8,16,32,48,64,72,96,128,139,256,512,1024,4096 ;;
    ab70)
        for b in 72 139 256; do
            F="bench --device cuda --shape llama2-70b --weights int4 --batch $b --isl 128 --osl 256"
            step e70_${b}_model 150 "$S/saker" $F
            step e70_${b}_rules8 150 env SAKER_W4_PICK=8 "$S/saker" $F
        done ;;
    ab7)
        for b in 64 128 256; do
            F="bench --device cuda --shape llama2-7b --weights int4 --batch $b --isl 128 --osl 256"
            step e7_${b}_model 100 "$S/saker" $F
            step e7_${b}_rules8 100 env SAKER_W4_PICK=8 "$S/saker" $F
        done ;;
    excl) # 70B 128/256 batch 72 (session 9: the model's picks there were 2.5% slower in the
          # engine than session 8's rules while dev_gemm_w4 bn had them ~7% faster): which tile
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 72 --isl 128 --osl 256"
        step x72_model 100 "$S/saker" $F
        step x72_rules8 100 env SAKER_W4_PICK=8 "$S/saker" $F
        step x72_nown80 100 env SAKER_W4_EXCL=wn64x80 "$S/saker" $F
        step x72_nown 100 env SAKER_W4_EXCL=wn64x64,wn64x80,wn64x96,wn64x128 "$S/saker" $F
        step x72_model2 100 "$S/saker" $F
        step x72_rules8b 100 env SAKER_W4_PICK=8 "$S/saker" $F ;;
    excl2) # the same question at other batches: the model against the model without wn64xBN
        for m in "llama2-7b 64" "llama2-7b 128" "llama2-70b 139" "llama2-70b 256"; do
            set -- $m
            F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
            step x_${1}_${2}_model 100 "$S/saker" $F
            step x_${1}_${2}_nown 100 env SAKER_W4_EXCL=wn64x64,wn64x80,wn64x96,wn64x128 "$S/saker" $F
        done ;;
    excl3) # batch 72 on 70B: which product's wn64xBN pick costs the engine time
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 72 --isl 128 --osl 256"
        W=wn64x64 ; X=""
        for w in wn64x64 wn64x80 wn64x96 wn64x128; do X="$X,$w@57344x8192"; done
        step y72_model 100 "$S/saker" $F
        step y72_nown_gateup 100 env SAKER_W4_EXCL=${X#,} "$S/saker" $F
        X=""; for w in wn64x64 wn64x80 wn64x96 wn64x128; do X="$X,$w@8192x8192"; done
        step y72_nown_o 100 env SAKER_W4_EXCL=${X#,} "$S/saker" $F
        X=""; for w in wn64x64 wn64x80 wn64x96 wn64x128; do X="$X,$w@8192x28672"; done
        step y72_nown_down 100 env SAKER_W4_EXCL=${X#,} "$S/saker" $F ;;
    final) # the refitted model (wn pairs / singles) at batch 72 against session 8's rules, and 7B 64
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 72 --isl 128 --osl 256"
        step f72_model 100 "$S/saker" $F
        step f72_rules8 100 env SAKER_W4_PICK=8 "$S/saker" $F
        F="bench --device cuda --shape llama2-7b --weights int4 --batch 64 --isl 128 --osl 256"
        step f7_64_model 100 "$S/saker" $F ;;
    tq) # the decode GEMV's tq default for qkv-sized STORE products: backend ops, then batch 1
        STEP_PATTERN="FAIL\|checks\|failures\|^| 128"
        step tq_bops_w4 120 stdbuf -oL "$S/gpu_backend_ops" w4
        step tq_bops_nm 120 stdbuf -oL "$S/gpu_backend_ops" norm_matmul
        for m in llama2-70b llama2-7b; do
            F="bench --device cuda --shape $m --weights int4 --batch 1 --isl 128 --osl 256"
            step tq_${m}_b1 100 "$S/saker" $F
            step tq_${m}_b1_off 100 env SAKER_W4_TQ_STORE=0 "$S/saker" $F
            step tq_${m}_b1_again 100 "$S/saker" $F
        done
        # where a 70B batch-1 step goes (SAKER_PROFILE=1: per-op GPU time, eager, no graphs)
        step prof70_b1 120 env SAKER_PROFILE=1 "$S/saker" bench --device cuda --shape llama2-70b \
            --weights int4 --batch 1 --isl 128 --osl 64 ;;
    big) # the model past 1,024 rows against dequantize + cuBLASLt (SAKER_W4_MODEL_MAX=1024: as
         # before): 70B INT4 at the largest batch (decode steps of ~1,146 rows, prefill chunks of
         # 2,048), 128/32 to keep the call short; ITL and the prompt phase (TTFT) both move
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max --isl 128 --osl 32"
        step big_model 150 "$S/saker" $F
        step big_old 150 env SAKER_W4_MODEL_MAX=1024 "$S/saker" $F ;;
    p4096)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
        step p4096 420 "$S/saker" $F --isl 128 --osl 4096 --ctx-beyond-train ;;
    p2048)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
        step p2048 300 "$S/saker" $F --isl 128 --osl 2048 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
