#!/bin/bash
# The design note's step 1 (dev/notes/w4_prefill_design.md): sk_w4ws_kernel with two consumer
# warpgroups and setmaxnreg 40 / 232, 384 threads, 3 stages: wr128x256 (one m64n256k16 a k16
# slice, 128 accumulators a thread, 75,776-byte stages) and wr128x192 (59,392-byte stages);
# written on a machine without a GPU, never run:
#  1. dev_gemm_w4 check of the two next to wr192x128, each launch traced before it runs, so that a
#     hang (an mbarrier phase, or a setmaxnreg.inc that the launch's registers cannot fund: the
#     launcher aborts with "cannot fund setmaxnreg" instead where it can tell) names its
#     configuration, split, mode and shape and the step's timeout ends it; stops unless
#     "0 failed";
#  2. dev_gemm_w4 bn (the backend's modes, split auto / 1..4) at 256..2048 rows, Llama-2-70B
#     shapes then 7B's, next to wr192x128/160, wc192x128, wt128x128/192;
#  3. the issue's table (STORE, with cuBLAS bf16 and the backend's pick) at 512..4096 rows.
# Predicted (design note, section 3.2; not measured): 70B down at 1,024 rows 0.92-1.0x cuBLAS
# (wr192x128: 0.79x), gate/up 0.86-0.91x (0.78x).
# Here: cmake --build build-gpu --target dev_gemm_w4 -j2; mkdir -p .stage/256 && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/256/ && strip .stage/256/dev_*
# On the device (.stage is ignored by git: carry [".stage/256"]): bash scripts/gpu_256.sh [STAGE]
# (the step timeouts add up to 540 s; stdbuf: a step cut short still leaves its rows)
. "$(dirname "$0")/device_lib.sh"
dev_init 256 "${1:-.stage/256}"
STEP_PATTERN="FAIL\|checks:\|blocks an SM\|cannot fund\|^| "
N=wr128x256,wr128x192
step check_256 200 env GW4_CFGS=$N,wr192x128 GW4_TRACE=1 "$S/dev_gemm_w4" check
if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_256.log"; then
    echo "256 check failed or hung; last launch: $(grep "^launch" "$R/check_256.log" | tail -1)"
    grep "^FAIL\|saker:" "$R/check_256.log" | head -20
    exit 1
fi
C=$N,wr192x128,wr192x160,wc192x128,wt128x128,wt128x192
M=256,512,768,1024,1146,1536,2048
step bn70 130 env GW4_CFGS=$C stdbuf -oL "$S/dev_gemm_w4" bn $M
step bn7 90 env GW4_CFGS=$C GW4_BN_MODEL=7b stdbuf -oL "$S/dev_gemm_w4" bn $M
step time 120 env GW4_CFGS=$N stdbuf -oL "$S/dev_gemm_w4" time 512,1024,2048,4096
grep -h "blocks an SM\|cannot fund" "$R"/*.log | sort -u
echo "done (+$(( $(date +%s) - T0 )) s)"
