#!/bin/bash
# Session 7, last minutes of device time: (1) gpu_backend_ops decode under racecheck with PDL off
# (session 6's run ended "target application returned an error" with an empty log; a guess: the
# PDL launch attribute under the sanitizer); (2) 70B INT4 128/128 at the largest batch, with
# session 7's changes (w4-epi, g128x128 at 5 stages, the split cap).
. "$(dirname "$0")/device_lib.sh"
dev_init race "${1:-.stage/cap}"
STEP_PATTERN="FAIL\|RESULT\|checks,\|runs,\|^| [0-9]\|ERROR SUMMARY\|RACECHECK SUMMARY\|hazard"
step race_dec 110 env SAKER_PDL=0 compute-sanitizer --tool racecheck --print-limit 20 \
    "$S/gpu_backend_ops" decode
step max128 120 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch max \
    --isl 128 --osl 128
echo "done (+$(( $(date +%s) - T0 )) s)"
