#!/bin/bash
# Session 29: what stretches decode kernel 2's push merge inside the step. Steps (STEPS):
#   cs    (workbench) dev_coresident: the push merge's section as a victim of co-resident
#         aggressors (PDL-launched after it: cp.async / bulk / ld.global floods, a spinning
#         producer) and of a global store before it
#   tr    (a SAKER_TRACE build's saker as saker_tr) 70B INT4 batch 1 traced (default,
#         SAKER_ATTN_TRIG_LOOP=0) and 7B batch 1: scripts/trace_timeline.py's phases, with the push
#         merge's finer marks and clock64 across it (session 29)
#   tr2   the same after the staged pushes: 70B batch 1 under SAKER_ATTN_PUSH 2 (default) and 1,
#         7B batch 1 under 2
#   tr3   70B batch 1 traced: default, o on the TMA feed (SAKER_W4_TQ_ADD=9: its blocks' prologue
#         one producer thread), SAKER_ATTN_TRIG_LOOP=0
#   tr4   70B batch 1 traced with the ADD products (o, and down) on other configurations
#         (SAKER_W4_TQ_ADD 1: register ring D2 NW8; 4: register ring D8 NW4; 8: shared ring D8
#         NW8; 11: tba NW16 NS2), for what o's blocks do to kernel 2's pushes
#   wck   (workbench) dev_attention_decode check under SAKER_ATTN_PUSH 2 and 1: every
#         configuration against the reference, the cluster-merged (push-merged where it applies)
#         outputs bitwise against the combine's
#   ck    gpu_backend_ops decode / attention / paged under SAKER_ATTN_PUSH 2, 1, 0
#   eab   the engine at AB_B (default: 70B batch 1, 7B batch 1, 70B batch 2): SAKER_ATTN_PUSH=1
#         (session 28's pushes) / the default / AB_V, two rounds
# Staging (this machine): the binaries (stripped) and libgomp in NAME/s29_all.txz; the trace
# build: cmake -S . -B build-trace -DCMAKE_BUILD_TYPE=Release -DSAKER_STATIC_DEPS=ON
# -DSAKER_TRACE=ON && cmake --build build-trace --target saker_cli -j2.
. "$(dirname "$0")/device_lib.sh"
dev_init s29${TAG:-} "${1:-.stage/s29}"
dev_unpack s29_all.txz
TRBIN=$S/saker && [ -f "$S/saker_tr" ] && TRBIN=$S/saker_tr
STEPS=${STEPS:-"cs tr"}
STEP_PATTERN="FAIL\|RESULT\|checks\|runs,\|SUMMARY"
TB=/tmp/s29_trace && mkdir -p $TB
trace() { # name shape batch env...
    local name=$1
    SAKER_BIN=$TRBIN dev_b1 "$@" SAKER_TRACE_FILE=$TB/$name.bin
    python3 scripts/trace_timeline.py $TB/$name.bin --layers 2 --csv $R/tl_$name.csv > $R/tl_$name.txt 2>&1
    grep -A4 "^phases" $R/tl_$name.txt
    rm -f $TB/$name.bin
    pack
}
for st in $STEPS; do
    case $st in
    cs) step cs 300 "$S/dev_coresident" ${CS_REPS:-200}
        grep "^|" "$R/cs.log" ;;
    tr) trace 70 llama2-70b 1 A=1
        trace 70tl0 llama2-70b 1 SAKER_ATTN_TRIG_LOOP=0
        trace 7 llama2-7b 1 A=1 ;;
    tr2) trace 70 llama2-70b 1 A=1
        trace 70pu1 llama2-70b 1 SAKER_ATTN_PUSH=1
        trace 70tl0 llama2-70b 1 SAKER_ATTN_TRIG_LOOP=0
        trace 7 llama2-7b 1 A=1 ;;
    tr3) trace 70 llama2-70b 1 A=1
        trace 70tba llama2-70b 1 SAKER_W4_TQ_ADD=9
        trace 70tl0 llama2-70b 1 SAKER_ATTN_TRIG_LOOP=0 ;;
    tr4) trace 70 llama2-70b 1 A=1
        for c in 1 4 8 11; do trace 70add$c llama2-70b 1 SAKER_W4_TQ_ADD=$c; done ;;
    wck) for pu in 2 1; do
            step wck_push$pu 600 env SAKER_ATTN_PUSH=$pu "$S/dev_attention_decode" check
            grep "correctness:\|FAIL\|RESULT" "$R/wck_push$pu.log" | tail -4
        done ;;
    ck) for g in ${CKG:-decode attention paged}; do
            for pu in 2 1 0; do
                step ck_${g}_push$pu 300 env SAKER_ATTN_PUSH=$pu "$S/gpu_backend_ops" $g bf16
                tail -1 "$R/ck_${g}_push$pu.log"
                grep "FAIL" "$R/ck_${g}_push$pu.log" | head -3
            done
        done ;;
    eab) AB_B=${AB_B:-"llama2-70b:1 llama2-7b:1 llama2-70b:2"} dev_eab SAKER_ATTN_PUSH=1 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
