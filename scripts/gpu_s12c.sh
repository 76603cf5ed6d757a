#!/bin/bash
# Session 12, third binary: the decode kernel-2 configuration for groups <= 8 at the 70B
# engine's own decode steps. Session 12's second call found the default (1 warp, ring of 2) 12%
# behind 1 warp without the ring at g8 256 x 1024, and 5% behind the best at MHA 64 x 4096.
#  time  workbench, every kernel-2 configuration at 1 split and its plan, on the engine's steps
#        (b139 x 1152 / 2176, b72 x 4224, b1146 x 192, b1 x 256; 64-token pages, random order);
#  e2e   70B INT4 batch 139 1024/64 with SAKER_ATTN_G8CFG=warps,ring,prefetch: the default, then
#        1,0,0 / 2,2,0 / 1,4,0, then the default again.
# Here: cmake --build build-gpu --target saker_cli dev_attention_decode -j2; stage
#   build-gpu/{saker,dev_attention_decode} + libgomp in .stage/s12c (tgz as s12c_bin.tgz)
. "$(dirname "$0")/device_lib.sh"
dev_init s12c "${1:-.stage/s12c}"
dev_unpack s12c_bin.tgz
STEPS=${STEPS:-"time e2e"}
STEP_PATTERN="FAIL\|failures\|ITL\|output tok\|best:"
SH="b139x1152,b139x2176,b72x4224,b1146x192,b1x256"
for st in $STEPS; do
    case $st in
    time)
        step time_engine 200 env AD_SHAPES="$SH" AD_NS=1 AD_NO_L2PF=1 AD_NO_MQ=1 \
            "$S/dev_attention_decode" time
        grep -A8 "^SUMMARY" "$R/time_engine.log" ;;
    e2e)
        BB="bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 1024 --osl 64"
        i=0
        for c in default 1,0,0 2,2,0 1,4,0 default; do
            i=$((i + 1))
            step e2e_b139_${i}_${c//,/_} 100 env SAKER_ATTN_G8CFG=$c "$S/saker" $BB
            grep "^| 1" "$R/e2e_b139_${i}_${c//,/_}.log" | awk -F'|' '{print "  output tok/s " $6 ", ITL p50 " $11}'
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
