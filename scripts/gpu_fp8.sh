#!/bin/bash
# W4A8 step 0 (dev/notes/w4a8_design.md section 5): the FP8 probe, ~2-3 minutes in all.
#  exact  e4m3 decode self-check; m64n64k32 e4m3 wgmma (RS and SS) one-hot products and random
#         dots against double: are subnormal inputs (the INT4 nibbles 0x01-0x07) kept or flushed?
#  acc    big + small probe (bits kept within one wgmma and across the chain) and random dots
#         at K = 128 .. 28,672, one accumulator against promotion every 128 of K;
#  rate   m64n256k32 e4m3 and m64n256k16 bf16 SS loops, RATE_S seconds each (default 20), with
#         nvidia-smi sampling SM clock / power / throttle reasons every 200 ms into smi_rate.csv
#         (the probe prints wall-clock marks to join them): r = fp8 / bf16 at the power cap;
#  lt     cuBLASLt FP8 (per-tensor, fast accumulation, outer-vector, vec128, blk128x128 scales)
#         against bf16 on the Llama-2-70B shapes at 1,152 / 2,048 / 16,384 rows, D fp32 then bf16.
# Here: cmake -S . -B build-fp8 -DCMAKE_BUILD_TYPE=Release && cmake --build build-fp8 --target
#   dev_fp8_probe -j2; mkdir -p .stage/fp8 && cp build-fp8/dev_fp8_probe .stage/fp8/ &&
#   strip .stage/fp8/dev_fp8_probe
#   (SASS check: cuobjdump -sass .stage/fp8/dev_fp8_probe | grep -c QGMMA, nonzero)
# On the device: carry [".stage/fp8"], bash scripts/gpu_fp8.sh (STEPS="exact acc rate lt" to pick,
# RATE_S=20). If the binary does not start there (other system libraries), build it there with
# the nvcc line in dev/cuda/fp8_probe.cu's header.
. "$(dirname "$0")/device_lib.sh"
dev_init fp8 "${1:-.stage/fp8}"
STEPS=${STEPS:-"exact acc rate lt"}
RATE_S=${RATE_S:-20}
STEP_PATTERN="FAIL\|RESULT"
P="$S/dev_fp8_probe"
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > "$R/gpu.txt" 2>&1
for st in $STEPS; do
    case $st in
    exact) step exact 60 stdbuf -oL "$P" exact ;;
    acc) step acc 90 stdbuf -oL "$P" acc ;;
    rate)
        # only the GPU the probe runs on (session 12's run logged both GPUs of a two-GPU machine)
        nvidia-smi -i "${CUDA_VISIBLE_DEVICES:-0}" \
            --query-gpu=timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active \
            --format=csv,noheader -lms 200 > "$R/smi_rate.csv" 2>&1 &
        SMI=$!
        step rate $(( 2 * RATE_S + 60 )) stdbuf -oL "$P" rate "$RATE_S"
        kill $SMI
        # mean SM clock / power between the probe's marks, per phase
        for ph in fp8 bf16; do
            a=$(grep "mark rate_${ph}_start" "$R/rate.log" | awk '{print $3" "$4}')
            b=$(grep "mark rate_${ph}_end" "$R/rate.log" | awk '{print $3" "$4}')
            [ -n "$a" ] && [ -n "$b" ] && awk -F', ' -v a="$a" -v b="$b" -v ph=$ph \
                '$1 >= a && $1 <= b { n++; c += $2; p += $3 } END { if (n) printf "smi %s: %d samples, mean SM clock %.0f MHz, mean power %.1f W\n", ph, n, c / n, p / n }' \
                "$R/smi_rate.csv" | tee -a "$R/rate.log"
        done
        pack ;;
    lt)
        step lt_f32 150 stdbuf -oL "$P" lt f32
        step lt_bf16 150 stdbuf -oL "$P" lt bf16 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
