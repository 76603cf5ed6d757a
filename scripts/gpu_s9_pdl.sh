#!/bin/bash
# Session 9: programmatic dependent launch for the decode attention's kernels (rope/store, decode,
# combine: each triggers and waits at its start), so that the o projection's GEMV can launch and
# prefetch its weights while the attention runs, and the launch gaps close.
#  1. gpu_backend_ops rope / attention / paged / decode / fused, gpu_engine_batch (in-flight
#     batching against lone requests, graphs on);
#  2. engine batch 1 (and 64) 128/256 on Llama-2-70B and 7B INT4, SAKER_ATTN_PDL modes 0 (the
#     attention launched as before), 1 and 3, alternating, twice (same binary).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops gpu_engine_batch; mkdir -p
#   .stage/pd && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/tests/gpu_engine_batch
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/pd/ && strip .stage/pd/{saker,gpu_*}
. "$(dirname "$0")/device_lib.sh"
dev_init pd "${1:-.stage/pd}"
STEP_PATTERN="FAIL\|checks\|failures\|PASS\|OK\|^| 128"
for g in rope attention paged decode fused; do step bops_$g 120 "$S/gpu_backend_ops" $g; done
step engine_batch 200 "$S/gpu_engine_batch"
# SAKER_ATTN_PDL modes (pdl.cuh): 0 off, 1 rope/store triggers early (default), 2 all early (the
# first version: 70B batch 1 12.95 -> 17.0 ms), 3 none early
for m in "llama2-70b 1" "llama2-7b 1" "llama2-70b 64"; do
    set -- $m
    F="bench --device cuda --shape $1 --weights int4 --batch $2 --isl 128 --osl 256"
    for r in 1 2; do
        for mode in ${MODES:-0 1 3}; do
            step e_${1}_${2}_m${mode}_$r 100 env SAKER_ATTN_PDL=$mode "$S/saker" $F
        done
    done
done
echo "done (+$(( $(date +%s) - T0 )) s)"
