#!/bin/bash
# Session 6's last device call: dev_gemm_w4 bn at 33..64 rows (split-K of the wgmma tiles there),
# then gpu_engine_batch and gpu_quant_awq on the final build. Stage (here): gpu_engine_batch,
# gpu_quant_awq, dev_gemm_w4, libgomp and data/ (stories260K, aidreams260K, tinystories) in
# .stage/fin. Results: $OUT/fin.tgz, summary on stdout.
. "$(dirname "$0")/device_lib.sh"
dev_init fin "${1:-.stage/fin}"
export SK_DATA=$S/data SK_FIXTURES=$PWD/tests/fixtures
step bn 30 "$S/dev_gemm_w4" bn 33,48,64
grep "^| " "$R/bn.log"
step engine_batch 90 "$S/gpu_engine_batch"
step quant_awq 100 "$S/gpu_quant_awq"
echo "done (+$(( $(date +%s) - T0 )) s)"
