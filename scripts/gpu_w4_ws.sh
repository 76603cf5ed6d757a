#!/bin/bash
# Session 8's warp-specialized W4 GEMM (sk_w4ws_kernel: ws128x64, ws128x128, ws128x64b2; written
# on a machine without a GPU, never run): 1. dev_gemm_w4 check of the three alone, each launch
# traced before it runs, so that a hang (the worst failure of an mbarrier protocol) names its
# configuration, split, mode and shape, and the step's timeout ends it; 2. only if that passed,
# the full check (every configuration: the pre-existing kernels' code is unchanged, but the
# enum and launcher moved); 3. the kernel table at 64, 128 and 256 rows, twice, the ws
# configurations next to g128x64 / g128x128 (and the backend's picks).
# Here: cmake --build build-gpu --target dev_gemm_w4; mkdir -p .stage/ws && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/ws/ && strip .stage/ws/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init ws "${1:-.stage/ws}"
STEP_PATTERN="FAIL\|checks:\|^| "
step check_ws 240 env GW4_CFGS=ws128x64,ws128x128,ws128x64b2 GW4_TRACE=1 "$S/dev_gemm_w4" check
if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_ws.log"; then
    echo "ws check failed or hung; last launch: $(grep "^launch" "$R/check_ws.log" | tail -1)"
    exit 1
fi
step check 240 "$S/dev_gemm_w4" check
W=g128x64,g128x128,g128x128s5,ws128x64,ws128x128,ws128x64b2
step time1 240 env GW4_CFGS=$W "$S/dev_gemm_w4" time 64,128,256
step time2 240 env GW4_CFGS=$W "$S/dev_gemm_w4" time 64,128,256
echo "done (+$(( $(date +%s) - T0 )) s)"
