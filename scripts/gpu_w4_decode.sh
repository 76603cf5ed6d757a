#!/bin/bash
# INT4 decode on the GPU machine in one call (bench/results/awq-speed.md): the W4 GEMV workbench
# (CPU-reference checks, then timing against the copy ceiling and cuBLASLt bf16), gpu_backend_ops w4
# with the backend's default and its experiments (SAKER_W4_ZC=2, SAKER_W4_MT_ADD=1),
# the engine at batch 1 on the Llama-2-70B and 7B shapes with each of them, with PDL off, and with
# the CUDA-core kernel (SAKER_W4_GEMV=1), and a per-op profile of a 70B step.
#
# Here (build machine), from the repository root:
#   cmake -S . -B build-w -DSAKER_STATIC_DEPS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-w -j2 --target dev_gemv_w4 saker_cli gpu_backend_ops
#   mkdir -p .stage/w && cp build-w/saker build-w/tests/gpu_backend_ops build-w/dev_gemv_w4 \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/w/ && strip .stage/w/saker .stage/w/gpu_backend_ops \
#       .stage/w/dev_gemv_w4
# On the device (run with carry [".stage/w"]): bash scripts/gpu_w4_decode.sh [STAGE]
# Logs go to $OUT (bench.log, gemv_w4.log, bops.log, profile.log, rc.txt, and all of them in
# w4logs.tgz, rewritten after each step so that a call cut short still returns them).
S=$PWD/${1:-.stage/w}
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
    (cd "$OUT" && tar czf w4logs.tgz --exclude=w4logs.tgz *.log rc.txt 2>/dev/null)
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv > "$OUT/rc.txt" 2>&1
A70="bench --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 32 --device cuda"
A7="bench --shape llama2-7b --weights int4 --batch 1 --isl 128 --osl 64 --device cuda"
step gemv_w4 80 90 "$OUT/gemv_w4.log" "$S/dev_gemv_w4" gemv
step bops_w4 95 20 "$OUT/bops.log" "$S/gpu_backend_ops" w4
step bops_w4_zc2 100 20 "$OUT/bops.log" env SAKER_W4_ZC=2 "$S/gpu_backend_ops" w4
step bops_w4_mt1 105 20 "$OUT/bops.log" env SAKER_W4_MT_ADD=1 "$S/gpu_backend_ops" w4
step b70 110 15 "$B" "$S/saker" $A70
step b70_zc2 112 15 "$B" env SAKER_W4_ZC=2 "$S/saker" $A70
step b70_mt1 113 15 "$B" env SAKER_W4_MT_ADD=1 "$S/saker" $A70
step b70_nopdl 116 15 "$B" env SAKER_PDL=0 "$S/saker" $A70
step b70_again 119 15 "$B" "$S/saker" $A70
step b70_zc2_again 122 15 "$B" env SAKER_W4_ZC=2 "$S/saker" $A70
step b7 128 10 "$B" "$S/saker" $A7
step b7_zc2 130 10 "$B" env SAKER_W4_ZC=2 "$S/saker" $A7
step b7_mt2 131 10 "$B" env SAKER_W4_MT_ADD=2 "$S/saker" $A7
step prof70 132 15 "$P" env SAKER_PROFILE=1 "$S/saker" $A70
step prof70_zc2 140 15 "$P" env SAKER_PROFILE=1 SAKER_W4_ZC=2 "$S/saker" $A70
echo "total $(el)s" >> "$OUT/rc.txt"
grep -E "^checks|^copy|FAIL" "$OUT/gemv_w4.log" | head -20
grep -E "backend's pick|v1 \*" "$OUT/gemv_w4.log"
sed -n '/GEMVs of one decode step/,$p' "$OUT/gemv_w4.log"
cat "$OUT/rc.txt"
grep -E "^\| [0-9]" "$B"
grep -E "^backend_ops" "$OUT/bops.log"
