#!/bin/bash
# Session 14, last call: the final binary (decode GEMV defaults: ADD tq 6, STORE tq 5/7, RS1).
#  check  gpu_backend_ops w4, norm_matmul, fused, decode (bf16);
#  b1     Llama-2-70B / 7B INT4 batch 1 and 2 (128/256): the new defaults against the session's
#         starting kernels (SAKER_W4_TQ_ADD=0 SAKER_W4_TQ_STORE=1, 7B: =3), alternating;
#         Falcon-180B INT4 batch 1 the same;
#  skip   70B batch 1 with each part of the layer left out (SAKER_SKIP), as session 13's table.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops -j2; stage build-gpu/saker,
#   build-gpu/tests/gpu_backend_ops and libgomp in .stage/s14g as s14g_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14g "${1:-.stage/s14g}"
dev_unpack s14g_bin.tgz
STEPS=${STEPS:-"check b1 skip"}
STEP_PATTERN="FAIL\|failures\|RESULT"
b1() { dev_b1 "$@"; } # name shape batch env...
OLD70="SAKER_W4_TQ_ADD=0 SAKER_W4_TQ_STORE=1"
OLD7="SAKER_W4_TQ_ADD=0 SAKER_W4_TQ_STORE=3"
for st in $STEPS; do
    case $st in
    check) for g in w4 norm_matmul fused decode; do
            step check_$g 240 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done ;;
    b1)
        for i in 1 2 3; do
            b1 70new$i llama2-70b 1 A=1
            b1 70old$i llama2-70b 1 $OLD70
        done
        for i in 1 2; do
            b1 70b2new$i llama2-70b 2 A=1
            b1 70b2old$i llama2-70b 2 $OLD70
            b1 7new$i llama2-7b 1 A=1
            b1 7old$i llama2-7b 1 $OLD7
        done
        b1 180new falcon-180b 1 A=1
        b1 180old falcon-180b 1 $OLD70 ;;
    skip)
        for sk in none qkv attn o mlp down qkv,attn,o,mlp,down; do
            b1 skip_${sk//,/_} llama2-70b 1 SAKER_SKIP=$([ $sk = none ] || echo $sk)
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
