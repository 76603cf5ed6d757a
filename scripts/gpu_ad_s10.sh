#!/bin/bash
# Session 10 (issue 3/5, helper ad1): the short-context variant of decode kernel 2
# (SAKER_ATTN_SHORT; attn_decode.cuh sk_attn_decode_short_launch, attention.cu), written without a
# GPU. Expected: 70B INT4 batch 1 at 128/256 ~3-5 us a layer less attention latency in the graph
# (the combine launch and its L2 round trips gone; one 8-warp block per KV head up to 256
# tokens), i.e. 0.25-0.4 ms of the 12.78 ms step (2-3%); 7B batch 1 ~0.1 ms of 2.03 (~5%).
#  1. dev_attention_decode check (every version, version 5 at warps 4/8 x ring 0/2 x minc 1/2/3
#     x splits x fused/combine kernel, counters checked zero after each fused launch); stop
#     unless 0 failures;
#  2. gpu_backend_ops decode / attention / paged with the variant on (fused and combine kernel,
#     small splits so that the merges run: W 4, MINC 1, every batch size) and with its defaults;
#     stop unless 0 failures;
#  3. dev_attention_decode short: the variant's configurations next to the backend's entry at
#     batch 1 and 4, contexts 64..4096, 70B and 7B shapes (graphs, warm and cold);
#  4. engine 70B INT4 batch 1 128/256, SAKER_ATTN_SHORT 0 / 1 / 2, alternating, twice.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_attention_decode; mkdir -p
#   .stage/ad && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_attention_decode
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/ad/ && strip .stage/ad/{saker,gpu_*,dev_*}
# PARTS (default "check bops short engine") picks steps, e.g. two device calls of <= 10 min:
#   PARTS="check bops short" scripts/gpu_ad_s10.sh, then PARTS=engine (only once the first passed).
. "$(dirname "$0")/device_lib.sh"
dev_init ad "${1:-.stage/ad}"
STEP_PATTERN="FAIL\|RESULT\|runs,\|checks\|failures\|^| 128"
PARTS=${PARTS:-check bops short engine}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if part check; then
    step check 420 "$S/dev_attention_decode" check
    if ! grep -q "^RESULT: PASS" "$R/check.log"; then echo "workbench check failed: stop"; exit 1; fi
fi
if part bops; then
    SMALL="SAKER_ATTN_SHORT_W=4 SAKER_ATTN_SHORT_MINC=1 SAKER_ATTN_SHORT_MAXB=4096"
    for g in decode attention paged; do
        step bops_${g}_f 150 env SAKER_ATTN_SHORT=1 $SMALL "$S/gpu_backend_ops" $g
        step bops_${g}_c 150 env SAKER_ATTN_SHORT=2 $SMALL "$S/gpu_backend_ops" $g
        step bops_${g}_d 150 env SAKER_ATTN_SHORT=1 "$S/gpu_backend_ops" $g
    done
    for f in "$R"/bops_*.log; do
        if ! grep -q "checks, 0 failures$" "$f"; then
            echo "$(basename "$f"): failures or no summary: stop"; grep -h "FAIL" "$f" | head -5; exit 1
        fi
    done
fi
if part short; then
    step short 420 "$S/dev_attention_decode" short
    sed -n '/^short-context/,$p' "$R/short.log"
fi
F="bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256"
part engine && for r in 1 2; do
    for m in 0 1 2; do step e70_m${m}_$r 150 env SAKER_ATTN_SHORT=$m "$S/saker" $F; done
done
echo "done (+$(( $(date +%s) - T0 )) s)"
