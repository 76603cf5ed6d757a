#!/bin/bash
# Session 12, first binary (main at the wt-m2 merge + SAKER_ATTN_SKIP): the wt-m2 A/B and where
# the batch-1 attention goes inside the graph.
#  check   gpu_backend_ops w4 with SAKER_W4_MODEL_BIG=1 (must be "0 failures");
#  table   dev_gemm_w4 time (the issue's table, the backend's pick) at 512..2048 rows, big 0 / 1;
#  e2e     70B INT4 128/128 at batch max (1,146), big 0 / 1 / 0;
#  askip   70B INT4 batch 1 128/256 with each decode-attention kernel left out (SAKER_ATTN_SKIP,
#          timing only): none, store, combine, decode, all three, none.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemm_w4 -j2; mkdir -p
#   .stage/s12 && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemm_w4
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/s12/ && strip .stage/s12/{saker,gpu_*,dev_*} && (cd .stage/s12 &&
#   tar czf s12_bin.tgz saker gpu_* dev_* libgomp.so.1 && rm saker gpu_* dev_* libgomp.so.1)
# On the device: carry [".stage/s12"], STEPS="..." bash scripts/gpu_s12.sh
. "$(dirname "$0")/device_lib.sh"
dev_init s12 "${1:-.stage/s12}"
dev_unpack s12_bin.tgz
STEPS=${STEPS:-"check table e2e askip"}
STEP_PATTERN="FAIL\|failures\|^| [0-9]\|ITL\|output tok"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv,noheader > "$R/gpu.txt" 2>&1
for st in $STEPS; do
    case $st in
    check) step check_big 300 env SAKER_W4_MODEL_BIG=1 stdbuf -oL "$S/gpu_backend_ops" w4 ;;
    table)
        for v in 0 1; do
            step table_big$v 300 env SAKER_W4_MODEL_BIG=$v GW4_CFGS=none stdbuf -oL \
                "$S/dev_gemm_w4" time 512,768,1024,1146,1536,2048
        done ;;
    e2e)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch max --isl 128 --osl 128"
        i=0
        for v in 0 1 0; do i=$((i + 1)); step e2e_big${v}_$i 200 env SAKER_W4_MODEL_BIG=$v "$S/saker" $F; done ;;
    askip)
        F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
        i=0
        for v in none store combine decode store,decode,combine none; do
            i=$((i + 1))
            step askip_${i}_${v//,/_} 60 env SAKER_ATTN_SKIP=$v "$S/saker" $F
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
