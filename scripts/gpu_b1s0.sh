#!/bin/bash
# b1 stage 0 (dev/notes/b1_persistent_decode.md section 6): dev_b1_stage0's three measurements.
# STEPS picks what runs (default all three, well under 4 minutes):
#  flag    release/acquire flag round trip between CTAs on SMs (0, 1) and (0, nSM / 2), idle and
#          while the other CTAs stream 2 GiB at full bandwidth (median / p90 ns, globaltimer);
#  arrive  264 CTAs (2 an SM, cooperative) arriving on one counter / 8 sub-counters, a waiter
#          observing all of them (median / p90 ns);
#  dep     o-shaped ADD -> gate/up-shaped SwiGLU in one persistent kernel with one counter
#          dependency, without it (upper bound), and as today's two per-op launches with PDL:
#          checks, then us, weight GB/s and b = t(dep) - t(nodep) (RESULT line), then a
#          per-worker globaltimer trace.
# Here: cmake -S . -B build-b1 -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=75 &&
#   cmake --build build-b1 --target dev_b1_stage0 -j2 && mkdir -p .stage/b1s0 &&
#   cp build-b1/dev_b1_stage0 .stage/b1s0/ && strip .stage/b1s0/dev_b1_stage0
#   (CMakeLists.txt sets 90a itself for every CUDA target)
# On the device: carry [".stage/b1s0"], bash scripts/gpu_b1s0.sh (or STEPS="dep" bash ...)
. "$(dirname "$0")/device_lib.sh"
dev_init b1s0 "${1:-.stage/b1s0}"
STEPS=${STEPS:-"flag arrive dep"}
STEP_PATTERN="FAIL\|RESULT\|TIMEOUT\|^| [0-9]\|^| persistent\|^| per-op"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv,noheader > "$R/gpu.txt" 2>&1
for st in $STEPS; do
    case $st in
    flag) step flag 90 stdbuf -oL "$S/dev_b1_stage0" flag ;;
    arrive) step arrive 60 stdbuf -oL "$S/dev_b1_stage0" arrive ;;
    dep) step dep 180 stdbuf -oL "$S/dev_b1_stage0" dep ;;
    esac
    cat "$R/$st.log"
done
echo "done (+$(( $(date +%s) - T0 )) s)"
