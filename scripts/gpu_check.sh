#!/bin/bash
# The standard GPU check of a session, in one device call (about 2 minutes on the H200 without
# the grid, 8-10 with it): every GPU test program, then (with "grid") the seed's throughput grid.
# Results: one tarball $OUT/gpu_check.tgz (written after every step, so a call cut short still
# returns what ran) and a summary on stdout.
#
# Here (build machine), from the repository root:
#   cmake -S . -B build-gpu -DSAKER_STATIC_DEPS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-gpu -j2 --target saker_cli gpu_backend_ops gpu_engine_batch gpu_sample \
#       gpu_quant_awq
#   mkdir -p .stage/gpu && cp build-gpu/saker build-gpu/tests/gpu_* \
#       /lib/x86_64-linux-gnu/libgomp.so.1 .stage/gpu/ && strip .stage/gpu/saker .stage/gpu/gpu_*
#   (optionally workbenches too: cp build-gpu/dev_attention_decode .stage/gpu/, then strip)
#   The tree that travels is at most 64 MiB: saker and the four test programs (stripped, each
#   ~14 MB since each links the whole library) do not fit at once. Stage them in two folders and
#   make two consecutive calls (the machine stays warm between them); steps whose program is not
#   staged are skipped. gpu_quant_awq needs the data: cp -r ../shared/data/{stories260K,
#   aidreams260K,tinystories} into the stage folder's data/ (SK_DATA is set to it when present).
# On the device (run with carry [".stage/gpu"]): bash scripts/gpu_check.sh [grid|grid4096] [STAGE]
#   grid      adds 7B/13B/70B at 128/128, 128/2048, 2048/128, 2048/2048 (batch max)
#   grid4096  adds only the 128/4096 points, past Llama-2's context (--ctx-beyond-train)
S=$PWD/${2:-.stage/gpu}
R=/tmp/gpu_check
OUT=${OUT:-/tmp/gpu_check_out}
rm -rf "$R" && mkdir -p "$R" "$OUT"
export LD_LIBRARY_PATH=$S:/usr/local/cuda/lib64
T0=$(date +%s)
pack() { tar czf "$OUT/gpu_check.tgz" -C /tmp gpu_check; }
step() { # name timeout-s cmd...   (skipped when the program is not staged)
    local name=$1 to=$2
    shift 2
    if [ ! -x "$1" ] && [ ! -x "$S/$(basename "$1")" ]; then echo "$name: not staged, skipped"; return; fi
    timeout "$to" "$@" > "$R/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc (+$(( $(date +%s) - T0 )) s): $(grep -h "checks,\|tests\|RESULT\|^| [0-9]" "$R/$name.log" | tail -4 | tr '\n' ' ')"
    pack
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv,noheader
step backend_ops 200 "$S/gpu_backend_ops" all
step engine_batch 90 "$S/gpu_engine_batch"
step sample 90 "$S/gpu_sample"
[ -d "$S/data" ] && export SK_DATA=${SK_DATA:-$S/data} SK_FIXTURES=${SK_FIXTURES:-$PWD/tests/fixtures}
[ -n "${SK_DATA:-}" ] && step quant_awq 120 "$S/gpu_quant_awq"
# workbenches staged alongside (dev_attention_decode, dev_gemm_w4, ...): checks, then timing
for w in "$S"/dev_*; do [ -x "$w" ] && step "$(basename "$w")" 240 "$w" all; done
bench() { local name=$1 to=$2; shift 2; step "$name" "$to" "$S/saker" bench --device cuda --batch max \
    --json "$R/$name.json" "$@"; }
case "${1:-}" in
grid)
    bench g7a 200 --shape llama2-7b --isl 128 --osl 128,2048
    bench g7b 130 --shape llama2-7b --isl 2048 --osl 128,2048
    bench g13a 200 --shape llama2-13b --isl 128 --osl 128,2048
    bench g13b 130 --shape llama2-13b --isl 2048 --osl 128,2048
    bench g70a 200 --shape llama2-70b --isl 128,2048 --osl 128
    bench g70b 200 --shape llama2-70b --isl 128,2048 --osl 2048
    ;;
grid4096)
    bench g7c 200 --shape llama2-7b --isl 128 --osl 4096 --ctx-beyond-train
    bench g13c 200 --shape llama2-13b --isl 128 --osl 4096 --ctx-beyond-train
    bench g70c 280 --shape llama2-70b --isl 128 --osl 4096 --ctx-beyond-train
    ;;
esac
echo "done (+$(( $(date +%s) - T0 )) s)"
