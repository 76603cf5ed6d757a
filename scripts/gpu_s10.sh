#!/bin/bash
# Session 10 (issue 5): STEPS picks what runs (default "bops bn70 bn7 table"):
#  bops   gpu_backend_ops w4 (the model's unsplit choice goes through the backend's W4 path);
#  bn70 / bn7  dev_gemm_w4 bn (backend modes) at 33..256 rows, the model's candidates, at the
#         launcher's split and at 1 / 2 / 4 splits (the data to judge the model's split choice:
#         "*1" marks a pick the model runs unsplit);
#  table  the issue's table (STORE, cuBLAS bf16 next to it) at 64..1024 rows;
#  skip   70B INT4 batch 1, 128/256: the step with each part of the layer left out (SAKER_SKIP;
#         outputs meaningless): what each part costs inside the captured graph;
#  pdl    the skip step's full and no-MLP points with PDL off and on, alternating;
#  split  the vectorized split-K reduction: check, backend ops, bn at every split;
#  split2 the refitted model (1-4 splits) against MSPLIT 1 and 0: checks, table, engine;
#  last   the session's final binary: all backend ops, engine batch test, engine points;
#  pdl2   PDL between the x cast and the W4 tiles, on / off;
#  final  the merged SwiGLU decode GEMV: checks (workbench, all backend ops, engine batch,
#         memcheck) and batch 1 / 2 against SAKER_W4_TQ_SW=0;
#  ab     the model's unsplit choice against the launcher's split only (SAKER_W4_MSPLIT=0) in the
#         engine: 70B and 7B at batch 64 and 48, 128/256 (new, old, new).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4 -j2, then
#   mkdir -p .stage/s10 && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/s10/ && strip .stage/s10/{saker,gpu_*,dev_*}
. "$(dirname "$0")/device_lib.sh"
dev_init s10 "${1:-.stage/s10}"
STEPS=${STEPS:-"bops bn70 bn7 table"}
if [ -f "$S/s10_bin.tgz" ]; then # binaries packed (more than 50 MB unpacked)
    mkdir -p /tmp/s10_bin && tar xzf "$S/s10_bin.tgz" -C /tmp/s10_bin || exit 1
    S=/tmp/s10_bin; export LD_LIBRARY_PATH=$S:$LD_LIBRARY_PATH
fi
STEP_PATTERN="FAIL\|checks\|ERROR\|^| 1024\|RESULT\|ITL"
C=wn64x64,wn64x80,wn64x96,wn64x128,wt128x64,wt128x80,wt128x96,wt128x128,wt128x144,wt128x160
C=$C,wt128x192,wc192x96,wc192x128,wr192x128,wr192x160
M=33,48,64,72,96,128,139,192,256
for st in $STEPS; do
    case $st in
    bops) step bops_w4 200 stdbuf -oL "$S/gpu_backend_ops" w4 ;;
    bn70) step bn70 200 env GW4_CFGS=$C stdbuf -oL "$S/dev_gemm_w4" bn $M ;;
    bn7) step bn7 200 env GW4_CFGS=$C GW4_BN_MODEL=7b stdbuf -oL "$S/dev_gemm_w4" bn $M ;;
    table) step table 200 env GW4_CFGS=none stdbuf -oL "$S/dev_gemm_w4" time 48,64,72,96,128,256,1024 ;;
    skip)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
        for p in none attn qkv o mlp down qkv,attn,o,mlp,down none; do
            step skip_${p//,/_} 100 env SAKER_SKIP=$p "$S/saker" $F
        done ;;
    pdl) # the same at batch 1 with PDL off (SAKER_PDL=0): does the gate/up GEMV's in-graph
         # cost (79.8 us a layer against ~74 alone) come from its launch overlap?
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
        for p in none mlp none; do
            step pdl0_skip_$p 100 env SAKER_PDL=0 SAKER_SKIP=$p "$S/saker" $F
            step pdl1_skip_$p 100 env SAKER_SKIP=$p "$S/saker" $F
        done ;;
    split) # the vectorized split-K reduction of the TMA tiles: dev_gemm_w4 check of the
           # backend's candidates (splits auto / 1 / 3), backend ops, then bn at every split
           # (auto / 1 / 2 / 3 / 4) for the refit (bench/results/data/w4_bn_s10b_*.log)
        step check_split 300 env GW4_CFGS=$C stdbuf -oL "$S/dev_gemm_w4" check
        if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_split.log"; then
            echo "check failed: stop"; grep "^FAIL" "$R/check_split.log" | head; exit 1
        fi
        step bops_w4s 200 stdbuf -oL "$S/gpu_backend_ops" w4
        step bn70s 250 env GW4_CFGS=$C stdbuf -oL "$S/dev_gemm_w4" bn $M,384,512
        step bn7s 200 env GW4_CFGS=$C GW4_BN_MODEL=7b stdbuf -oL "$S/dev_gemm_w4" bn $M,384,512 ;;
    split2) # the refitted model with 1-4 splits (SAKER_W4_MSPLIT=4, the default) against
            # unsplit-or-launcher (1) and the launcher's split only (0), all with the vectorized
            # reduction: backend ops, engine batch test, the issue's table, engine mid batches
        step bops_w4s2 200 stdbuf -oL "$S/gpu_backend_ops" w4
        step engine_batch_s2 120 "$S/gpu_engine_batch"
        step table_s2 200 env GW4_CFGS=none stdbuf -oL "$S/dev_gemm_w4" time 33,48,64,72,96,128,139,192,256,512,1024
        for m in "llama2-70b 64" "llama2-70b 96" "llama2-70b 128" "llama2-7b 64" "llama2-7b 128"; do
            set -- $m
            F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
            step s2_${1}_${2}_m4 100 "$S/saker" $F
            step s2_${1}_${2}_m1 100 env SAKER_W4_MSPLIT=1 "$S/saker" $F
            step s2_${1}_${2}_m0 100 env SAKER_W4_MSPLIT=0 "$S/saker" $F
        done ;;
    last) # the session's final binary (MSPLIT default 1): backend ops, the engine's batch test,
          # and the engine points
        step bops_last 300 stdbuf -oL "$S/gpu_backend_ops" all
        step engine_batch_last 120 "$S/gpu_engine_batch"
        for m in "llama2-70b 1" "llama2-70b 64" "llama2-70b 128" "llama2-7b 1" "llama2-7b 64"; do
            set -- $m
            step last_${1}_$2 100 "$S/saker" bench --device cuda --shape $1 --weights int4 \
                --batch $2 --isl 128 --osl 256
        done
        step last_p2048 300 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 \
            --batch max --isl 128 --osl 2048 ;;
    pdl2) # PDL between the x cast and the TMA tiles (SAKER_W4M_PDL, default on) against off
        step bops_w4_pdl 200 stdbuf -oL "$S/gpu_backend_ops" w4
        step engine_batch_pdl 120 "$S/gpu_engine_batch"
        for m in "llama2-70b 64" "llama2-70b 128" "llama2-7b 64"; do
            set -- $m
            F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
            step p2_${1}_${2}_on 100 "$S/saker" $F
            step p2_${1}_${2}_off 100 env SAKER_W4M_PDL=0 "$S/saker" $F
            step p2_${1}_${2}_on2 100 "$S/saker" $F
        done ;;
    final) # the merged SwiGLU GEMV (sk_w4_ts_kernel configuration 2, now the default for
           # gate/up at 1-2 rows): its workbench check, every backend op, the engine's batch test
           # (graphs on), memcheck of the fused-norm products, then batch 1 / 2 against
           # SAKER_W4_TQ_SW=0 (the binaries packed in $S/s10_bin.tgz: they exceed 50 MB unpacked)
        step checksw 200 "$S/dev_gemv_w4" checksw
        step bops_all 300 stdbuf -oL "$S/gpu_backend_ops" all
        step engine_batch 120 "$S/gpu_engine_batch"
        step memcheck_nm 200 compute-sanitizer --tool memcheck "$S/gpu_backend_ops" norm_matmul
        for m in "llama2-70b 1" "llama2-7b 1" "llama2-70b 2"; do
            set -- $m
            F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
            step f_${1}_b${2}_ts 100 "$S/saker" $F
            step f_${1}_b${2}_off 100 env SAKER_W4_TQ_SW=0 "$S/saker" $F
            step f_${1}_b${2}_ts2 100 "$S/saker" $F
        done ;;
    ab)
        for m in "llama2-70b 64" "llama2-70b 48" "llama2-7b 64" "llama2-7b 48"; do
            set -- $m
            F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
            step ab_${1}_${2}_new 100 "$S/saker" $F
            step ab_${1}_${2}_old 100 env SAKER_W4_MSPLIT=0 "$S/saker" $F
            step ab_${1}_${2}_new2 100 "$S/saker" $F
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
