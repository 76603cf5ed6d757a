#!/bin/bash
# Session 9: choosing among the TMA W4 tiles (wt128xBN, wn64xBN, wc192xBN, wr192xBN) in the
# backend's modes (qkv STORE, o ADD, gate/up SWIGLU, down ADD), launcher's split only:
#  1. dev_gemm_w4 check of the wn/wc/wr configurations as merged on main (traced);
#  2. dev_gemm_w4 bn over 33..1024 rows, Llama-2-70B shapes, then Llama-2-7B's.
# Here: cmake --build build-gpu --target dev_gemm_w4 -j2; mkdir -p .stage/bn && cp
#   build-gpu/dev_gemm_w4 /lib/x86_64-linux-gnu/libgomp.so.1 .stage/bn/ && strip .stage/bn/dev_*
# On the device (carry .stage/bn): bash scripts/gpu_s9_bn.sh
. "$(dirname "$0")/device_lib.sh"
dev_init bn "${1:-.stage/bn}"
STEP_PATTERN="FAIL\|checks:\|blocks an SM"
step check_new 200 env GW4_CFGS=wn64x64,wn64x80,wn64x96,wn64x128,wc192x64,wc192x96,wc192x128,wr192x128,wr192x144,wr192x160 GW4_TRACE=1 "$S/dev_gemm_w4" check
grep -q "checks: [0-9]* runs, 0 failed" "$R/check_new.log" || { echo "check failed"; grep "^FAIL" "$R/check_new.log" | head; exit 1; }
C=wt128x64,wt128x80,wt128x96,wt128x128,wt128x144,wt128x160,wt128x192,wn64x64,wn64x80,wn64x96,wn64x128,wc192x64,wc192x96,wc192x128,wr192x128,wr192x144,wr192x160,g128x64
M=33,48,64,72,80,96,112,128,139,160,176,192,224,256,320,384,448,512,640,768,896,1024
STEP_PATTERN="^| "
step bn70 240 env GW4_CFGS=$C GW4_BN_AUTO=1 stdbuf -oL "$S/dev_gemm_w4" bn $M
step bn7 200 env GW4_CFGS=$C GW4_BN_AUTO=1 GW4_BN_MODEL=7b stdbuf -oL "$S/dev_gemm_w4" bn $M
echo "done (+$(( $(date +%s) - T0 )) s)"
