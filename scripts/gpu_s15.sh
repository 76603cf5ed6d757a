#!/bin/bash
# Session 15: the decode step's in-graph timeline (SAKER_TRACE build: pdl.cuh's per-block
# globaltimer ring, scripts/trace_timeline.py), since the device machine has no nsys.
#  tr   (stage .stage/s15: the trace build's saker) 70B INT4 batch 1 and 2, 7B and Falcon-180B
#       batch 1, each traced, the timeline's medians and two layers' blocks as CSV.
#  trv  the same for 70B batch 1 with other picks for qkv (SAKER_W4_TQ_STORE=7) and gate/up
#       (SAKER_W4_TQ_SW=5), to see what moves where.
# Here: cmake -S . -B build-trace -DCMAKE_BUILD_TYPE=Release -DSAKER_STATIC_DEPS=ON -DSAKER_TRACE=ON;
#   cmake --build build-trace --target saker_cli -j2; stage saker (stripped) + libgomp in
#   .stage/s15 as s15_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s15 "${1:-.stage/s15}"
dev_unpack s15_bin.tgz
STEPS=${STEPS:-"tr"}
TB=/tmp/s15_trace && mkdir -p $TB
trace() { # name shape batch env...
    local name=$1
    dev_b1 "$@" SAKER_TRACE_FILE=$TB/$name.bin
    python3 scripts/trace_timeline.py $TB/$name.bin --layers 2 --csv $R/tl_$name.csv > $R/tl_$name.txt 2>&1
    sed -n '3,12p' $R/tl_$name.txt
    rm -f $TB/$name.bin
    pack
}
for st in $STEPS; do
    case $st in
    tr) trace 70 llama2-70b 1 A=1
        trace 70b2 llama2-70b 2 A=1
        trace 7 llama2-7b 1 A=1
        trace 180 falcon-180b 1 A=1 ;;
    trv) trace 70st7 llama2-70b 1 SAKER_W4_TQ_STORE=7
        trace 70sw5 llama2-70b 1 SAKER_W4_TQ_SW=5 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
