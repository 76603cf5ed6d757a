#!/bin/bash
# Session 22: the decode attention at group 8 against torch SDPA (issue 3's open bar: a tie).
# Steps (STEPS):
#   fit   the workbench (kernel 2 sweep at one split, pages in pool order of 128 tokens) and torch
#         on g8 at 64 x 2048 / 4096 / 8192, 128 x 4096, 256 x 1024: time = fixed + bytes / rate
#         for each, in the same call (where does the launch's fixed cost stand against torch's?)
#   ord   the same g8 shapes with pages dealt round-robin over the sequences (AD_ORDERED=2)
#         against pool order (1) and a random permutation (0)
#   tr    the traced workbench (-DSAKER_TRACE): each configuration's blocks' starts and ends
#   wck   the workbench's checks (every configuration; kernel 2's 2..16-split runs also compared
#         bitwise with the cluster merge off)
#   ck    gpu_backend_ops groups (CKG), cluster merge on (the default)
#   eb    gpu_engine_batch (staged as s22_eb.txz) with EBARGS
#   cab   the engine, SAKER_ATTN_CLUSTER 0 / 1 alternating, two rounds: 70B INT4 batch 1, 7B
#         batch 1, then 70B batch 16 and 64 (CAB_B)
#   ct    the workbench's timing of the engine-like short shapes, AD_CLUSTER 0 / 1
#   fin   the final binary against the session's start (SAKER_ATTN_CLUSTER=0 SAKER_ATTN_PREWAIT=0:
#         the same paths as before), two rounds alternating, FIN_B (model:batch), plus
#         SAKER_ATTN_PREWAIT=4 at 2 and 4 rows
#   ns    the engine at batch 1 (70B, 7B): the split count forced (SAKER_ATTN_NS) under the
#         cluster merge, and the attention's launches left out (SAKER_ATTN_SKIP, timing only)
#   tg    the engine, SAKER_ATTN_TRIG 0 / N alternating (the decode kernel triggering o after
#         its chunk loop): two rounds of 70B and 7B batch 1, then 70B batch 4
#   pw    the engine, SAKER_ATTN_PREWAIT 0 / 1 alternating (the decode kernel's pre-wait page
#         table and L2 prefetch, the rope/store triggering after its wait): two rounds of 70B and
#         7B batch 1, then PW_B (model:batch) once each
# Staging: .stage/s22 (dev_attention_decode, dev_attention_decode_tr) as s22_bin.txz.
. "$(dirname "$0")/device_lib.sh"
dev_init s22${TAG:-} "${1:-.stage/s22}"
for f in s22_bin.txz; do [ -f "$S/$f" ] && dev_unpack $f; done
STEPS=${STEPS:-"fit"}
STEP_PATTERN="FAIL\|RESULT\|best:\|SUMMARY"
G8=${G8:-"g8 b64x2048,g8 b64x4096,g8 b64x8192,g8 b128x4096,g8 b256x1024"}
TSH=${TSH:-"llama70b g8 b64x2048,llama70b g8 b64x4096,llama70b g8 b64x8192,llama70b g8 b128x4096,llama70b g8 b256x1024"}
for st in $STEPS; do
    case $st in
    fit) step fit_ours1 300 env AD_SHAPES="$G8" AD_NS=${FIT_NS:-1} AD_NO_L2PF=1 AD_NO_MQ=1 AD_ORDERED=1 AD_PS=128 \
            "$S/dev_attention_decode" time
         grep -A12 "^SUMMARY" "$R/fit_ours1.log"
         step fit_torch 300 python3 bench/attention_decode_torch.py --shapes "$TSH"
         grep -A12 "^SUMMARY" "$R/fit_torch.log"
         step fit_ours2 300 env AD_SHAPES="$G8" AD_NS=${FIT_NS:-1} AD_NO_L2PF=1 AD_NO_MQ=1 AD_ORDERED=1 AD_PS=128 \
            "$S/dev_attention_decode" time
         grep -A12 "^SUMMARY" "$R/fit_ours2.log" ;;
    ord) for o in ${ORDS:-2 1 0 2}; do
            step ord${o}_$((++n)) 300 env AD_SHAPES="${ORD_SH:-$G8}" AD_NS=${ORD_NS:-1} AD_NO_L2PF=1 AD_NO_MQ=1 \
                AD_ORDERED=$o AD_PS=${ORD_PS:-128} "$S/dev_attention_decode" time
            grep -A12 "^SUMMARY" "$R/ord${o}_$n.log"
         done ;;
    tr) step trace 300 env AD_TRACE=1 AD_SHAPES="${TR_SH:-g8 b64x4096,g8 b256x1024}" AD_NS=${TR_NS:-1} AD_NO_L2PF=1 \
            AD_NO_MQ=1 AD_ORDERED=1 AD_PS=128 "$S/dev_attention_decode_tr" time
        grep "trace\| us " "$R/trace.log" | head -80 ;;
    wck) step wck 300 "$S/dev_attention_decode" check
         grep "correctness:" "$R/wck.log" ;;
    ck) for g in ${CKG:-attention paged decode}; do
            step check_${g}${TAG} 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_${g}${TAG}.log"
        done ;;
    eb) [ -x "$S/gpu_engine_batch" ] || tar xf "$PWD/.stage/s22/s22_eb.txz" -C "$S"
        step eb 400 "$S/gpu_engine_batch" $EBARGS
        tail -2 "$R/eb.log" ;;
    cab) for r in 1 2; do
            for v in 0 1; do
                dev_b1 70b1_c${v}_r$r llama2-70b 1 SAKER_ATTN_CLUSTER=$v
                dev_b1 7b1_c${v}_r$r llama2-7b 1 SAKER_ATTN_CLUSTER=$v
            done
         done
         for sb in ${CAB_B:-70:16 70:64}; do
            sh=llama2-${sb%%:*}b; b=${sb##*:}
            for v in ${CAB_V:-0 1}; do dev_b1 ${sb%%:*}b${b}_c${v} $sh $b SAKER_ATTN_CLUSTER=$v; done
         done ;;
    ct) for v in 0 1 0 1; do
            step ct_c${v}_$((++n)) 200 env AD_CLUSTER=$v AD_SHAPES="${CT_SH:-b1x256,b116x192,b139x1152,b72x4224}" \
                AD_NO_L2PF=1 AD_NO_MQ=1 "$S/dev_attention_decode" time
            grep -A10 "^SUMMARY" "$R/ct_c${v}_$n.log"
         done ;;
    fin) for r in 1 2; do
            for sb in ${FIN_B:-70:1 7:1 70:2 70:4 70:8 7:4}; do
                sh=llama2-${sb%%:*}b; b=${sb##*:}
                dev_b1 ${sb%%:*}b${b}_base_r$r $sh $b SAKER_ATTN_CLUSTER=0 SAKER_ATTN_PREWAIT=0
                dev_b1 ${sb%%:*}b${b}_new_r$r $sh $b
                [ $r = 1 ] && [ $b = 2 -o $b = 4 ] && dev_b1 ${sb%%:*}b${b}_pw4_r$r $sh $b SAKER_ATTN_PREWAIT=4
            done
         done ;;
    ns) for r in 1 2; do
            for m in 70 7; do
                dev_b1 ${m}b1_def_r$r llama2-${m}b 1
                for n in ${NS_LIST:-4 8 12}; do dev_b1 ${m}b1_ns${n}_r$r llama2-${m}b 1 SAKER_ATTN_NS=$n; done
                [ $r = 1 ] && for k in store decode store,decode; do
                    dev_b1 ${m}b1_skip_${k/,/_} llama2-${m}b 1 SAKER_ATTN_SKIP=$k
                done
            done
        done ;;
    tg) for r in 1 2; do
            for v in 0 1; do
                dev_b1 70b1_tg${v}_r$r llama2-70b 1 SAKER_ATTN_TRIG=$v
                dev_b1 7b1_tg${v}_r$r llama2-7b 1 SAKER_ATTN_TRIG=$v
            done
        done
        for v in 0 4; do dev_b1 70b4_tg${v} llama2-70b 4 SAKER_ATTN_TRIG=$v; done ;;
    pw) for r in 1 2; do
            for v in 0 1; do
                dev_b1 70b1_pw${v}_r$r llama2-70b 1 SAKER_ATTN_PREWAIT=$v
                dev_b1 7b1_pw${v}_r$r llama2-7b 1 SAKER_ATTN_PREWAIT=$v
            done
        done
        for sb in ${PW_B:-70:8 70:16 70:64 7:16}; do
            sh=llama2-${sb%%:*}b; b=${sb##*:}
            for v in 0 1; do dev_b1 ${sb%%:*}b${b}_pw${v} $sh $b SAKER_ATTN_PREWAIT=$v; done
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
