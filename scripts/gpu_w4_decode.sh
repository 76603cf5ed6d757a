#!/bin/bash
# INT4 decode on the GPU machine in one call (bench/results/awq-speed.md): the W4 GEMV workbench
# (CPU-reference checks, then timing against the copy ceiling and cuBLASLt bf16), the engine at
# batch 1 on the Llama-2-70B and 7B shapes before (SAKER_W4_GEMV=1: the CUDA-core kernel) and
# after (the tensor-core kernel), gpu_backend_ops w4, and a per-op profile of a 70B step.
#
# Here (build machine), from the repository root:
#   cmake -S . -B build-c -DSAKER_STATIC_DEPS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-c -j2 --target dev_gemv_w4 saker_cli gpu_backend_ops
#   mkdir -p .stage/c && cp build-c/saker build-c/tests/gpu_backend_ops build-c/dev_gemv_w4 \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/c/ && strip .stage/c/saker .stage/c/gpu_backend_ops \
#       .stage/c/dev_gemv_w4
# On the device (run with carry [".stage/c"]): bash scripts/gpu_w4_decode.sh [STAGE]
# Logs go to $OUT (bench.log, gemv_w4.log, bops.log, profile.log, rc.txt); about 25 s on the H200.
S=$PWD/${1:-.stage/c}
OUT=${OUT:-/tmp/w4out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$S:/usr/local/cuda/lib64
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
B=$OUT/bench.log; P=$OUT/profile.log
step() { # name deadline-s timeout-s logfile cmd...
    local name=$1 dl=$2 to=$3 f=$4
    shift 4
    if [ "$(el)" -ge "$dl" ]; then echo "== SKIP $name (t=$(el)s)" >> "$OUT/rc.txt"; return; fi
    echo "== $name (t=$(el)s): $*" >> "$f"
    timeout "$to" "$@" >> "$f" 2>&1
    echo "== $name rc $? (t=$(el)s)" >> "$OUT/rc.txt"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv > "$OUT/rc.txt" 2>&1
A70="bench --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 32 --device cuda"
A7="bench --shape llama2-7b --weights int4 --batch 1 --isl 128 --osl 64 --device cuda"
step gemv_w4 60 70 "$OUT/gemv_w4.log" "$S/dev_gemv_w4" gemv
step b70_v1 90 30 "$B" env SAKER_W4_GEMV=1 "$S/saker" $A70
step b70_tc 100 30 "$B" "$S/saker" $A70
step bops_w4 105 30 "$OUT/bops.log" "$S/gpu_backend_ops" w4
step b7_v1 110 15 "$B" env SAKER_W4_GEMV=1 "$S/saker" $A7
step b7_tc 113 15 "$B" "$S/saker" $A7
step prof70_tc 116 25 "$P" env SAKER_PROFILE=1 "$S/saker" $A70
step b70_pdl 130 20 "$B" env SAKER_PDL=1 "$S/saker" $A70
echo "total $(el)s" >> "$OUT/rc.txt"
grep -E "^checks|^copy" "$OUT/gemv_w4.log"
sed -n '/GEMVs of one decode step/,$p' "$OUT/gemv_w4.log"
cat "$OUT/rc.txt"
grep -E "^\| [0-9]" "$B"
tail -n 1 "$OUT/bops.log"
