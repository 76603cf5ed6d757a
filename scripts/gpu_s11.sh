#!/bin/bash
# Session 11 (issue 5): the 128 x 256 / 128 x 192 W4 tiles (wr128x256, wr128x192: two consumer
# warpgroups, setmaxnreg) in the backend's cost table. STEPS picks what runs:
#  bops   gpu_backend_ops w4 with the model's picks, then with every TMA tile but wr128x256
#         excluded (SAKER_W4_EXCL: the model must take it wherever it takes a TMA tile), then
#         the same for wr128x192; fused ops; gpu_engine_batch;
#  table  the issue's table (STORE, cuBLAS bf16 next to it, the backend's pick) at 64..4096 rows;
#  skip139 the 70B batch-139 decode step (1024/64) with each part of the layer left out;
#  bn139  dev_gemm_w4 bn (every TMA tile, splits auto / 1-4) at 128, 139, 144, 160 rows;
#  power  SM clock / power sampled under the batch-139 step, its eager per-op profile, and the
#         workbench's gate/up tile at 139 rows;
#  bucket decode buckets of 16 rows against 32: engine test, batch 139 (1024/64), 128/2048;
#  final  the last binary: backend ops, engine test, table, 70B batch 1 / 64, Falcon-180B b256;
#  gelu   gelu_matmul_add: backend ops, engine test, Falcon-180B b256 fused / not / fused;
#  e2e    70B INT4 128/128 and 2048/128 at the largest batch, the new table against the old
#         choice set (SAKER_W4_EXCL=wr128x256,wr128x192), new / old / new.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops gpu_engine_batch dev_gemm_w4
#   -j2; mkdir -p .stage/s11 && cp build-gpu/saker build-gpu/tests/gpu_backend_ops
#   build-gpu/tests/gpu_engine_batch build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1
#   .stage/s11/ && strip .stage/s11/{saker,gpu_*,dev_*} && (cd .stage/s11 && tar czf s11_bin.tgz
#   saker gpu_* dev_* libgomp.so.1 && rm saker gpu_* dev_* libgomp.so.1)
# On the device: carry [".stage/s11"], STEPS="..." bash scripts/gpu_s11.sh
. "$(dirname "$0")/device_lib.sh"
dev_init s11 "${1:-.stage/s11}"
STEPS=${STEPS:-"bops table"}
dev_unpack s11_bin.tgz
STEP_PATTERN="FAIL\|checks\|failures\|ERROR\|^| 1024\|RESULT\|^| 128 \|^| 2048 "
ALL=wn64x64,wn64x80,wn64x96,wn64x128,wt128x64,wt128x80,wt128x96,wt128x128,wt128x144,wt128x160
ALL=$ALL,wt128x192,wc192x96,wc192x128,wr192x128,wr192x160
F="bench --device cuda --shape llama2-70b --weights int4 --batch max"
for st in $STEPS; do
    case $st in
    bops)
        step bops_w4 300 stdbuf -oL "$S/gpu_backend_ops" w4
        step bops_w4_only256 300 env SAKER_W4_EXCL=$ALL,wr128x192 stdbuf -oL "$S/gpu_backend_ops" w4
        step bops_w4_only192 300 env SAKER_W4_EXCL=$ALL,wr128x256 stdbuf -oL "$S/gpu_backend_ops" w4
        step bops_fused 200 stdbuf -oL "$S/gpu_backend_ops" fused
        step engine_batch 200 "$S/gpu_engine_batch" ;;
    table) step table 300 env GW4_CFGS=none stdbuf -oL "$S/dev_gemm_w4" time 64,128,256,512,1024,1146,2048,4096 ;;
    e2e)
        for v in ${E2E_ORDER:-new old}; do
            X=; [ $v = old ] && X=wr128x256,wr128x192
            step e2e_128_128_$v 200 env SAKER_W4_EXCL=$X "$S/saker" $F --isl 128 --osl 128
            step e2e_2048_128_$v 200 env SAKER_W4_EXCL=$X "$S/saker" $F --isl 2048 --osl 128
        done ;;
    skip139) # where a batch-139 decode step goes (the 128/2048 point's batch at its average
             # context, ~1,100 tokens): 70B INT4 1024/64, each part of the layer left out
        G="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 1024 --osl 64"
        for p in none attn qkv o mlp down qkv,attn,o,mlp,down none; do
            step skip139_${p//,/_} 100 env SAKER_SKIP=$p "$S/saker" $G
        done ;;
    bn139) # every TMA tile at 128-160 rows (the 128/2048 point's decode batch is 139)
        C=wn64x64,wn64x80,wn64x96,wn64x128,wt128x64,wt128x80,wt128x96,wt128x128,wt128x144
        C=$C,wt128x160,wt128x192,wc192x96,wc192x128,wr192x128,wr192x160,wr128x192,wr128x256
        step bn139 200 env GW4_CFGS=$C stdbuf -oL "$S/dev_gemm_w4" bn 128,139,144,160 ;;
    power) # the batch-139 step's SM clock and power (nvidia-smi every 200 ms), the same step
           # with SAKER_PROFILE=1 (eager, per-op CUDA events), and the workbench's gate/up
           # tile at 139 rows under the same sampling: is the in-graph GEMM time (~22% over the
           # workbench's) the clock under sustained load?
        nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active \
            --format=csv,noheader -lms 200 > "$R/smi.csv" 2>&1 &
        SMI=$!
        G="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 1024 --osl 64"
        echo "bench $(date +%T.%N)" >> "$R/marks.txt"
        step power_b139 100 "$S/saker" $G
        echo "profile $(date +%T.%N)" >> "$R/marks.txt"
        step power_b139_prof 200 env SAKER_PROFILE=1 "$S/saker" $G
        echo "bn $(date +%T.%N)" >> "$R/marks.txt"
        step power_bn 100 env GW4_CFGS=wt128x144,wr192x160 stdbuf -oL "$S/dev_gemm_w4" bn 139
        echo "end $(date +%T.%N)" >> "$R/marks.txt"
        kill $SMI; pack ;;
    bucket) # decode buckets in steps of 16 rows (33..1,024) against 32 (SAKER_BUCKET_STEP=32):
            # the engine test (graph-replayed padded steps), then the batch-139 step at ~1,100
            # tokens of context (1024/64; new / old / new), then the 128/2048 point
        step bucket_engine_batch 200 "$S/gpu_engine_batch"
        G="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 1024 --osl 64"
        for v in 16 32 16; do step bucket_b139_$v 100 env SAKER_BUCKET_STEP=$v "$S/saker" $G; done
        step bucket_128_2048 240 "$S/saker" $F --isl 128 --osl 2048 ;;
    final) # the session's last binary: backend ops (w4, fused, decode), engine test, the issue's
           # table with the engine's paths past 1,024 rows, 70B batch 1 / 64, and Falcon-180B INT4
           # at batch 256 (TensorRT-LLM's published "up to 800 tok/s" used batches 256 and 128)
        for o in w4 fused decode; do step final_bops_$o 200 stdbuf -oL "$S/gpu_backend_ops" $o; done
        step final_engine_batch 200 "$S/gpu_engine_batch"
        step final_table 200 env GW4_CFGS=none stdbuf -oL "$S/dev_gemm_w4" time 128,512,1024,2048
        B="bench --device cuda --shape llama2-70b --weights int4 --isl 128 --osl 256"
        step final_70b_b1 100 "$S/saker" $B --batch 1
        step final_70b_b64 100 "$S/saker" $B --batch 64
        step final_f180_b256 240 "$S/saker" bench --device cuda --shape falcon-180b --weights int4 \
            --batch 256 --isl 128 --osl 128 ;;
    gelu) # Falcon's GELU applied in the cast of the down projection's input (gelu_matmul_add)
          # against the separate GELU pass (SAKER_GELU_FUSE=0): backend ops, engine test, then
          # Falcon-180B INT4 at batch 256, 128/128, new / old / new
        for o in fused w4; do step gelu_bops_$o 200 stdbuf -oL "$S/gpu_backend_ops" $o; done
        grep -h "gelu_matmul_add" "$R"/gelu_bops_*.log | head -3
        step gelu_engine_batch 200 "$S/gpu_engine_batch"
        F1="bench --device cuda --shape falcon-180b --weights int4 --batch 256 --isl 128 --osl 128"
        for v in 1 0 1; do step gelu_f180_fuse$v 150 env SAKER_GELU_FUSE=$v "$S/saker" $F1; done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
