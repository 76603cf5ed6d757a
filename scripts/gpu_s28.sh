#!/bin/bash
# Session 28: the batch-1 decode attention's phases inside the captured step (trace build), the
# push merge of kernel 2's clusters (SAKER_ATTN_PUSH), the weight streams' L2 evict-first policy at
# 1-2 rows (w4.cuh SK_W4_EF, build time). Two ideas of the session were measured and removed (the
# rope/store kernel's table work before its wait, SAKER_ROPE_PREWAIT; the ring's first chunks
# before the decode kernel's wait, SAKER_ATTN_PREISSUE: both within noise); the steps that ran
# them are kept as run. Steps (STEPS):
#   tr / tr2  (a SAKER_TRACE build's saker: saker_tr in the archive, or saker) 70B INT4 batch 1
#         traced under variants (tr: default, SAKER_ROPE_PREWAIT=0, SAKER_ATTN_TRIG_LOOP=0, and
#         7B; tr2: default, SAKER_ATTN_PUSH=0, and 7B), scripts/trace_timeline.py's medians (the
#         rope/store launch; the decode kernel's phases: wait, q loaded, chunk loop done, merge
#         done, end)
#   tr3   the same under SAKER_ATTN_PREWAIT=0 (no bulk L2 prefetch in kernel 2's prologue), 70B
#         and 7B batch 1
#   wck   (workbench) dev_attention_decode check: every configuration against the reference, and
#         the cluster-merged (push-merged where it applies) outputs bitwise against the combine's
#   wt    (workbench) dev_attention_decode time at WT_SHAPES under SAKER_ATTN_PUSH 1 and 0
#   ck    gpu_backend_ops decode / attention / paged / rope under the default and the old paths
#   ckf   gpu_backend_ops CKG groups (default: w4 fused norm_matmul carry decode attention paged)
#         under the default, decode under SAKER_ATTN_PUSH=0
#   eb    gpu_engine_batch with EBARGS (default "llama2-7b bf16 int4")
#   eab   the engine at AB_B, AB_OLD / the default / AB_V, two rounds
#   efab  the engine at AB_B: saker_ne (another build: without SK_W4_EF in session 28's call; the
#         session-27 binary in the final one) against saker, and EF_V's variants on saker at
#         batch 1, two rounds
# Staging (this machine): the binaries (stripped) and libgomp in NAME/s28_all.txz, one archive a
# call (the carry limit: two engine-sized binaries a call); the trace build: cmake -S . -B
# build-trace -DCMAKE_BUILD_TYPE=Release -DSAKER_STATIC_DEPS=ON -DSAKER_TRACE=ON
# -DCMAKE_CUDA_ARCHITECTURES=75 && cmake --build build-trace --target saker_cli -j2.
. "$(dirname "$0")/device_lib.sh"
dev_init s28${TAG:-} "${1:-.stage/s28t}"
ST=$S
for f in s28_tr.txz s28_eng.txz s28_all.txz; do [ -f "$ST/$f" ] && { S=$ST; dev_unpack $f; }; done
# s28_all.txz: the normal build's saker, gpu_backend_ops, gpu_engine_batch and the trace build's
# saker as saker_tr (one archive: the two binaries compress together)
TRBIN=$S/saker && [ -f "$S/saker_tr" ] && TRBIN=$S/saker_tr
STEPS=${STEPS:-"tr"}
STEP_PATTERN="FAIL\|RESULT\|checks\|runs,\|SUMMARY"
TB=/tmp/s28_trace && mkdir -p $TB
trace() { # name shape batch env...
    local name=$1
    SAKER_BIN=$TRBIN dev_b1 "$@" SAKER_TRACE_FILE=$TB/$name.bin
    python3 scripts/trace_timeline.py $TB/$name.bin --layers 2 --csv $R/tl_$name.csv > $R/tl_$name.txt 2>&1
    head -45 $R/tl_$name.txt
    rm -f $TB/$name.bin
    pack
}
for st in $STEPS; do
    case $st in
    tr) trace 70 llama2-70b 1 A=1
        trace 70rp0 llama2-70b 1 SAKER_ROPE_PREWAIT=0
        trace 70tl0 llama2-70b 1 SAKER_ATTN_TRIG_LOOP=0
        trace 7 llama2-7b 1 A=1 ;;
    tr3) trace 70 llama2-70b 1 A=1
        trace 70pw0 llama2-70b 1 SAKER_ATTN_PREWAIT=0
        trace 7 llama2-7b 1 A=1
        trace 7pw0 llama2-7b 1 SAKER_ATTN_PREWAIT=0 ;;
    tr2) trace 70 llama2-70b 1 A=1
        trace 70pu0 llama2-70b 1 SAKER_ATTN_PUSH=0
        trace 7 llama2-7b 1 A=1 ;;
    wck) step wck 600 "$S/dev_attention_decode" check
        grep "correctness:\|FAIL\|RESULT" "$R/wck.log" | tail -4 ;;
    wt) for pu in 1 0; do
            step wt_push$pu 300 env SAKER_ATTN_PUSH=$pu AD_SHAPES="${WT_SHAPES:-llama70b g8 b1x256 ps64}" "$S/dev_attention_decode" time
            grep "entry\|best" "$R/wt_push$pu.log" | tail -4
        done ;;
    ck) for g in ${CKG:-decode attention paged rope}; do
            for v in new old; do
                [ $v = old ] && [ $g = rope ] && continue
                e="SAKER_NOOP=1"
                [ $v = old ] && e="SAKER_ROPE_PREWAIT=0 SAKER_ATTN_PUSH=0 SAKER_ATTN_PREISSUE=0"
                step ck_${g}_$v 300 env $e "$S/gpu_backend_ops" $g bf16
                tail -1 "$R/ck_${g}_$v.log"
                grep "rope/store launches\|FAIL" "$R/ck_${g}_$v.log" | head -3
            done
        done ;;
    efab) # two binaries in one call: $S/saker_ne (no evict-first) against $S/saker (SK_W4_EF=1)
        for round in 1 2; do
            for mb in ${AB_B:-llama2-70b:1 llama2-7b:1 llama2-70b:2 llama2-70b:16}; do
                m=${mb%%:*} b=${mb##*:}
                SAKER_BIN=$S/saker_ne dev_b1 ${m}_b${b}_ne_r$round $m $b SAKER_NOOP=1
                dev_b1 ${m}_b${b}_ef_r$round $m $b SAKER_NOOP=1
                [ $b = 1 ] && for v in ${EF_V:-}; do dev_b1 ${m}_b${b}_${v//[=,+]/_}_r$round $m $b ${v//+/ }; done
            done
        done ;;
    ckf) for g in ${CKG:-w4 fused norm_matmul carry decode attention paged}; do
            step ckf_$g 400 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/ckf_$g.log"
        done
        step ckf_decode_pu0 300 env SAKER_ATTN_PUSH=0 "$S/gpu_backend_ops" decode bf16
        tail -1 "$R/ckf_decode_pu0.log" ;;
    eb) step eb 500 "$S/gpu_engine_batch" ${EBARGS:-llama2-7b bf16 int4}
        tail -3 "$R/eb.log" ;;
    eab) AB_B=${AB_B:-"llama2-70b:1 llama2-7b:1 llama2-70b:2"} \
         AB_V=${AB_V-"SAKER_ATTN_PUSH=0 SAKER_ROPE_PREWAIT=0 SAKER_ATTN_PREISSUE=0"} \
         AB_OLD=${AB_OLD:-"SAKER_ATTN_PUSH=0 SAKER_ROPE_PREWAIT=0 SAKER_ATTN_PREISSUE=0"} dev_eab x ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
