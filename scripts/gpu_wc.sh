#!/bin/bash
# Session 9's three-consumer-warpgroup W4 GEMM (sk_w4ws_kernel's NCW = 3, BM = 192: wc192x64,
# wc192x96, wc192x128 at 416 threads with the producer warp last; wr192x128, wr192x144,
# wr192x160 at 512 threads with setmaxnreg 40 / 152; written on a machine without a GPU, never
# run): 1. dev_gemm_w4 check of these alone, each launch traced before it runs, so that a hang
# (an mbarrier count or a setmaxnreg that never completes) names its configuration, split, mode
# and shape, and the step's timeout ends it; 2. only if that passed, the kernel table at 128,
# 256, 512 and 1024 rows, twice, next to wt128x128 / wt128x192 (and the backend's picks).
# Here: cmake --build build-gpu --target dev_gemm_w4 -j2; mkdir -p .stage/wc && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/wc/ && strip .stage/wc/dev_*
# On the device (run with carry [".stage/wc"]): bash scripts/gpu_wc.sh [STAGE] (caps 200 + 2 x 150 s;
# stdbuf: a time step cut short still leaves its rows)
. "$(dirname "$0")/device_lib.sh"
dev_init wc "${1:-.stage/wc}"
STEP_PATTERN="FAIL\|checks:\|^| "
WC=wc192x64,wc192x96,wc192x128,wr192x128,wr192x144,wr192x160
step check_wc 200 env GW4_CFGS=$WC GW4_TRACE=1 "$S/dev_gemm_w4" check
if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_wc.log"; then
    echo "wc check failed or hung; last launch: $(grep "^launch" "$R/check_wc.log" | tail -1)"
    grep "^FAIL" "$R/check_wc.log" | head -20
    exit 1
fi
W=$WC,wt128x128,wt128x192
step time1 150 env GW4_CFGS=$W stdbuf -oL "$S/dev_gemm_w4" time 128,256,512,1024
step time2 150 env GW4_CFGS=$W stdbuf -oL "$S/dev_gemm_w4" time 128,256,512,1024
echo "done (+$(( $(date +%s) - T0 )) s)"
