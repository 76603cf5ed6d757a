#!/bin/bash
# Session 14, third call: the ADD products (o, down) on sk_w4_tq_kernel configuration 5 (the ring
# in shared memory) by default.
#  check  gpu_backend_ops w4 (the backend's W4 ops with the new default, every shape of the test);
#  b1     Llama-2-70B and -7B INT4 batch 1 (128/256): the new default against SAKER_W4_TQ_ADD=0
#         (the previous kernels), alternating;
#  src    ncu with source counters (PC sampling of stall reasons) on dev_gemv_w4 prof2: which
#         instructions the decode GEMVs (tq: qkv, o, down; ts: gate/up) wait on; the source page
#         as SASS with its per-instruction stall columns.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemv_w4 -j2; stage
#   build-gpu/saker, build-gpu/tests/gpu_backend_ops, build-gpu/dev_gemv_w4 and libgomp in
#   .stage/s14c as s14c_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14c "${1:-.stage/s14c}"
dev_unpack s14c_bin.tgz
STEPS=${STEPS:-"check b1 src"}
STEP_PATTERN="FAIL\|failures\|RESULT"
b1() { dev_b1 "$1" "$2" 1 "${@:3}"; } # name shape env...
for st in $STEPS; do
    case $st in
    check) step check 240 "$S/gpu_backend_ops" w4
        tail -2 "$R/check.log" ;;
    b1)
        for i in 1 2 3; do
            b1 70_new$i llama2-70b A=1
            b1 70_old$i llama2-70b SAKER_W4_TQ_ADD=0
        done
        for i in 1 2; do
            b1 7_new$i llama2-7b A=1
            b1 7_old$i llama2-7b SAKER_W4_TQ_ADD=0
        done ;;
    src)
        step src 300 ncu --clock-control none --section WarpStateStats --section SourceCounters \
            --section LaunchStats --section Occupancy -k 'regex:sk_w4_t[qs]_kernel' -o "$R/src" \
            "$S/dev_gemv_w4" prof2
        ncu -i "$R/src.ncu-rep" --page details > "$R/src_details.txt" 2>&1
        ncu -i "$R/src.ncu-rep" --page source --csv --print-source sass > "$R/src_sass.csv" 2>&1 ||
            echo "source page export failed: $(head -3 "$R/src_sass.csv")"
        ls -la "$R"/src*; head -c 600 "$R/src_sass.csv"; echo
        grep -E "sk_w4_t|Duration|Warp Cycles Per Issued|Registers Per|Achieved Occupancy" "$R/src_details.txt" | head -40
        pack ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
