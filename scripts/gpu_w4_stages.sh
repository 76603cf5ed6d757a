#!/bin/bash
# Session 7: is the wgmma W4 GEMM's K loop latency-bound (loads run STAGES - 2 K blocks ahead)?
# dev_gemm_w4 check (the new configurations included), then its kernel table twice with
# g64x64 (one warpgroup: twice the row tiles), g64x64s8, g128x64s6/s8 and g128x128s5 next to
# the backend's configurations. Prediction if latency-bound: at 64-128 rows, o and qkv (64-80
# row tiles, one block an SM) 20-40% faster with 6-8 stages.
# Here: cmake --build build-gpu --target dev_gemm_w4; mkdir -p .stage/st && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/st/ && strip .stage/st/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init st "${1:-.stage/st}"
step check 200 "$S/dev_gemm_w4" check
step time1 200 "$S/dev_gemm_w4" time
step time2 200 "$S/dev_gemm_w4" time
echo "done (+$(( $(date +%s) - T0 )) s)"
