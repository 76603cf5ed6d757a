#!/bin/bash
# Session 6's last device call: dev_gemm_w4 bn at 33..64 rows (split-K of the wgmma tiles there),
# then gpu_engine_batch and gpu_quant_awq on the final build. Stage (here): gpu_engine_batch,
# gpu_quant_awq, dev_gemm_w4, libgomp and data/ (stories260K, aidreams260K, tinystories) in
# .stage/fin. Results: $OUT/fin.tgz, summary on stdout.
S=$PWD/${1:-.stage/fin}
R=/tmp/fin
OUT=${OUT:-/tmp/fin_out}
rm -rf "$R" && mkdir -p "$R" "$OUT"
export LD_LIBRARY_PATH=$S:/usr/local/cuda/lib64 SK_DATA=$S/data SK_FIXTURES=$PWD/tests/fixtures
T0=$(date +%s)
pack() { tar czf "$OUT/fin.tgz" -C /tmp fin; }
step() {
    local name=$1 to=$2
    shift 2
    timeout "$to" "$@" > "$R/$name.log" 2>&1
    echo "$name rc=$? (+$(( $(date +%s) - T0 )) s): $(grep -h "checks,\|tests\|RESULT\|FAIL" "$R/$name.log" | tail -3 | tr '\n' ' ')"
    pack
}
step bn 30 "$S/dev_gemm_w4" bn 33,48,64
grep "^| " "$R/bn.log"
step engine_batch 90 "$S/gpu_engine_batch"
step quant_awq 100 "$S/gpu_quant_awq"
echo "done (+$(( $(date +%s) - T0 )) s)"
