#!/bin/bash
# Session 12, final binary (main after the session's merges; defaults unchanged):
#  bops   gpu_backend_ops w4, attention, paged and decode (both dtypes);
#  race   compute-sanitizer racecheck of gpu_backend_ops paged bf16 (the decode and prefill
#         kernels through paged tables) and decode bf16 (the whole-model decode path with its
#         CUDA graphs; sessions 6-7 ended "target application returned an error" with an empty
#         log), stdout line-buffered so that a failure shows how far it got;
#  b1     70B INT4 batch 1 128/256;
#  p4096  70B INT4 128/4096 at the largest batch (issue 5's point, last run in session 8).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops -j2; stage build-gpu/saker,
#   build-gpu/tests/gpu_backend_ops and libgomp in .stage/s12d (tgz as s12d_bin.tgz)
. "$(dirname "$0")/device_lib.sh"
dev_init s12d "${1:-.stage/s12d}"
dev_unpack s12d_bin.tgz
STEPS=${STEPS:-"bops race b1 p4096"}
STEP_PATTERN="FAIL\|failures\|ERROR SUMMARY\|RACECHECK SUMMARY\|hazard\|ITL\|output tok\|^-- "
for st in $STEPS; do
    case $st in
    bops) for g in w4 attention paged decode; do step bops_$g 120 stdbuf -oL "$S/gpu_backend_ops" $g; done ;;
    race)
        step race_paged 100 stdbuf -oL compute-sanitizer --tool racecheck --print-limit 20 \
            "$S/gpu_backend_ops" paged bf16
        step race_decode 110 stdbuf -oL compute-sanitizer --tool racecheck --print-limit 20 \
            "$S/gpu_backend_ops" decode bf16
        tail -5 "$R/race_decode.log" ;;
    b1) step b1 60 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch 1 \
            --isl 128 --osl 256
        grep "^| 1" "$R/b1.log" ;;
    p4096)
        step p4096 300 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch max \
            --isl 128 --osl 4096 --ctx-beyond-train
        grep "^| 1" "$R/p4096.log" ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
