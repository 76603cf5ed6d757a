#!/bin/bash
# Session 14, first call (the switch and its code were removed after it: slower; results in
# bench/results/awq-speed.md, session 14): the o projection's weights prefetched into L2 during the decode
# attention (rope_attention's `next`, SAKER_ATTN_L2PF, attention.cu sk_l2pf).
#  check  gpu_backend_ops attention (every other rope_attention step with a next weight);
#  b1     70B INT4 batch 1 128/256 with the prefetch off / 40 MB bulk / 40 MB per line /
#         64 blocks, interleaved, and with the o product left out (SAKER_SKIP=o: what the
#         prefetch costs the attention itself).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops -j2; stage build-gpu/saker,
#   build-gpu/tests/gpu_backend_ops and libgomp in .stage/s14 as s14_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14 "${1:-.stage/s14}"
dev_unpack s14_bin.tgz
STEPS=${STEPS:-"check b1"}
STEP_PATTERN="FAIL\|failures\|ITL\|output tok\|^| 128"
b1() { dev_b1 "$1" llama2-70b 1 "${@:2}"; } # name env...
for st in $STEPS; do
    case $st in
    check) step check 200 "$S/gpu_backend_ops" attention
        tail -2 "$R/check.log" ;;
    b1)
        b1 off1 SAKER_ATTN_L2PF=0
        b1 pf40 SAKER_ATTN_L2PF=40
        b1 line40 SAKER_ATTN_L2PF=40 SAKER_ATTN_L2PF_MODE=2
        b1 off2 SAKER_ATTN_L2PF=0
        b1 pf40b SAKER_ATTN_L2PF=40
        b1 pf40_64 SAKER_ATTN_L2PF=40 SAKER_ATTN_L2PF_BLOCKS=64
        b1 pf20 SAKER_ATTN_L2PF=20
        b1 skipo_off SAKER_ATTN_L2PF=0 SAKER_SKIP=o
        b1 skipo_pf40 SAKER_ATTN_L2PF=40 SAKER_SKIP=o ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
