#!/bin/bash
# Session 13, last call: the decode GEMVs' weight loads with L2::256B (the backend's), L2::128B
# and no hint (SK_W4_L2HINT; the decode attention's register loads gained 2-3% from 128 over
# none): dev_gemv_w4 bk3 with BK3_BACKEND_ONLY=1 (the backend's launch on the 70B and 7B
# products at T = 1, with and without the fused norm), binaries in the order 256, 128, 0, 256.
# Here: cmake --build build-gpu --target dev_gemv_w4 (256); nvcc the workbench with
#   -DSK_W4_L2HINT=128 / 0 (CMake's flags); stage dev_gemv_w4_h256/h128/h0 in .stage/s13d as
#   s13d_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s13d "${1:-.stage/s13d}"
dev_unpack s13d_bin.tgz
STEP_PATTERN="FAIL\|RESULT"
i=0
for h in 256 128 0 256; do
    i=$((i + 1))
    step gemv_${i}_h$h 60 env BK3_BACKEND_ONLY=1 "$S/dev_gemv_w4_h$h" bk3
    grep "backend" "$R/gemv_${i}_h$h.log" | grep -v "^| shape"
done
echo "done (+$(( $(date +%s) - T0 )) s)"
