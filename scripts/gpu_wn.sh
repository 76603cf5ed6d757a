#!/bin/bash
# Session 8: sk_w4ws_kernel's TMA path with one consumer warpgroup (NCW = 1: wn64x64, wn64x80,
# wn64x96, wn64x128; 64 weight rows, 160 threads, the producer warp last, two blocks an SM;
# written on a machine without a GPU, never run):
#  1. dev_gemm_w4 check of the four alone, each launch traced before it runs, so that a hang
#     (the worst failure of an mbarrier protocol) names its configuration, split, mode and shape
#     and the step's timeout ends it; stops unless "0 failed";
#  2. the kernel table at 64, 72, 96, 128 and 139 rows, twice, the wn configurations next to
#     wt128x64 / wt128x128 / wt128x144 and g128x64 (and the backend's picks). A line
#     "saker: w4 warp-specialized kernel 64xBN: 1 blocks an SM, not 2" in the logs means the
#     stage count does not fit two blocks and the wn timings are not what they were meant to be.
# Here: cmake --build build-gpu --target dev_gemm_w4 -j2; mkdir -p .stage/wn && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/wn/ && strip .stage/wn/dev_*
# On the device (.stage is ignored by git: carry it): bash scripts/gpu_wn.sh (about 2-4 minutes;
# the step timeouts add up to 500 s)
. "$(dirname "$0")/device_lib.sh"
dev_init wn "${1:-.stage/wn}"
STEP_PATTERN="FAIL\|checks:\|blocks an SM\|^| "
step check_wn 200 env GW4_CFGS=wn64x64,wn64x80,wn64x96,wn64x128 GW4_TRACE=1 "$S/dev_gemm_w4" check
if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_wn.log"; then
    echo "wn check failed or hung; last launch: $(grep "^launch" "$R/check_wn.log" | tail -1)"
    grep "^FAIL" "$R/check_wn.log" | head -20
    exit 1
fi
W=wn64x64,wn64x80,wn64x96,wn64x128,wt128x64,wt128x128,wt128x144,g128x64
step time1 150 env GW4_CFGS=$W "$S/dev_gemm_w4" time 64,72,96,128,139
step time2 150 env GW4_CFGS=$W "$S/dev_gemm_w4" time 64,72,96,128,139
grep -h "blocks an SM" "$R"/*.log | sort -u
echo "done (+$(( $(date +%s) - T0 )) s)"
