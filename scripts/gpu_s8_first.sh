#!/bin/bash
# Next session's first call (written in session 7, not yet run):
#  1. dev_gemm_w4 bn at 17/24/32 rows on the 70B and the 7B shapes, now with the mma.sync tiles
#     (128x16, 128x32) next to the wgmma widths: session 7's kernel table had 70B gate/up at 32
#     rows at 186.6 us as g128x64 against the pick's (128x32) 213.1; if 7B agrees, pick g128x64
#     for SwiGLU products at 17-32 rows (the pick needs the mode).
#  2. ncu of the wgmma kernel on o's shape at 64 rows, unsplit and in 2 splits (dev_gemm_w4
#     prof's last two cases): why twice the blocks on twice the SMs take longer (55.4 against
#     60.8 us), the question behind split-K's and stream-K's losses.
#  3. dev_gemv_w4 probe (dev/notes/w4_gemv_research.md's first measurements for the batch-1
#     bar): whether mma.sync keeps fp16 subnormal A operands exactly (gates a cheaper zero-point
#     scheme; a normal-operand control must pass first), a read-only bandwidth ceiling, and a
#     decode GEMV's fixed cost per launch (time against K at N_out 8192, least-squares fit).
# Here: cmake --build build-gpu --target dev_gemm_w4 dev_gemv_w4; mkdir -p .stage/s8 && cp
#   build-gpu/dev_gemm_w4 build-gpu/dev_gemv_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/s8/ &&
#   strip .stage/s8/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init s8 "${1:-.stage/s8}"
step bn70 100 "$S/dev_gemm_w4" bn 17,24,32
step bn7 100 env GW4_BN_MODEL=7b "$S/dev_gemm_w4" bn 17,24,32
grep "\*" "$R/bn70.log" "$R/bn7.log"
step probe 120 "$S/dev_gemv_w4" probe
grep "probe" "$R/probe.log"
step ncu 240 ncu --kernel-name regex:sk_w4g_kernel --launch-skip 0 --launch-count 20 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
    --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
    "$S/dev_gemm_w4" prof
echo "done (+$(( $(date +%s) - T0 )) s)"
