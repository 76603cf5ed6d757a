#!/bin/bash
# The K split (sk_w4ws_kernel's KS = 2: wk64x64, wk64x64b2, wk64x80, wk64x96, wk64x128; two
# consumer warpgroups share one 64-row tile, taking alternate K blocks; 288 threads, the
# producer warp last; written on a machine without a GPU, never run):
#  1. dev_gemm_w4 check of the five alone, each launch traced before it runs, so that a hang
#     (the worst failure of an mbarrier protocol: here the two groups' stages and phases) names
#     its configuration, split, mode and shape and the step's timeout ends it; stops unless
#     "0 failed";
#  2. dev_gemm_w4 bn (the backend's modes, the launcher's split) at 48..256 rows, Llama-2-70B
#     shapes then 7B's, the wk configurations next to wn64x64/80/96/128 and wt128x64/128;
#  3. the issue's table (STORE, with cuBLAS bf16) at 64, 96 and 128 rows, the same list.
# A line "saker: w4 warp-specialized kernel 64xBN: 1 blocks an SM, not 2" means wk64x64b2's
# stages do not fit two blocks an SM.
# Here: cmake --build build-gpu --target dev_gemm_w4 -j2; mkdir -p .stage/wk && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/wk/ && strip .stage/wk/dev_*
# On the device (.stage is ignored by git: carry it): bash scripts/gpu_wk.sh (about 3-5 minutes;
# the step timeouts add up to 540 s)
. "$(dirname "$0")/device_lib.sh"
dev_init wk "${1:-.stage/wk}"
STEP_PATTERN="FAIL\|checks:\|blocks an SM\|^| "
K=wk64x64,wk64x64b2,wk64x80,wk64x96,wk64x128
step check_wk 150 env GW4_CFGS=$K GW4_TRACE=1 "$S/dev_gemm_w4" check
if ! grep -q "checks: [0-9]* runs, 0 failed" "$R/check_wk.log"; then
    echo "wk check failed or hung; last launch: $(grep "^launch" "$R/check_wk.log" | tail -1)"
    grep "^FAIL" "$R/check_wk.log" | head -20
    exit 1
fi
C=$K,wn64x64,wn64x80,wn64x96,wn64x128,wt128x64,wt128x128
M=48,64,72,96,128,139,192,256
step bn70 150 env GW4_CFGS=$C GW4_BN_AUTO=1 stdbuf -oL "$S/dev_gemm_w4" bn $M
step bn7 120 env GW4_CFGS=$C GW4_BN_AUTO=1 GW4_BN_MODEL=7b stdbuf -oL "$S/dev_gemm_w4" bn $M
step time 120 env GW4_CFGS=$C "$S/dev_gemm_w4" time 64,96,128
grep -h "blocks an SM" "$R"/*.log | sort -u
echo "done (+$(( $(date +%s) - T0 )) s)"
