#!/bin/bash
# Session 15: the RMSNorm carried from the down GEMV to the next layer's qkv GEMV (norm_next;
# w4.cuh sk_w4_pn, matmul.cu). SAKER_NORM_CARRY=0 turns it off.
#  ck   gpu_backend_ops carry (new), norm_matmul, w4, fused; end to end: stories260K quantized
#       RTN g32 here (.stage/s15q/st260_rtn), greedy 64 tokens on the CPU, on CUDA with the carry
#       and without: the texts must be equal.
#  final the default (the MLP's carry at 1 row, the attention's at 2) against none: 70B batch 1
#       and 2, 7B batch 1, two rounds.
#  v3   the ADD epilogue's sums of squares by shuffles: default / none / all / qkv, 70B batch 1
#       and 2, 7B, two rounds.
#  qcfg qkv's tq configuration with its norm carried: 70B batch 2 (default carry) STORE 7/5/8/6,
#       batch 1 with the attention's carry STORE 5/8/7, and the default; two rounds.
#  eng  70B INT4 batch 1 with and without the carry (and with qkv's or the MLP's alone),
#       alternating, two rounds; batch 2; 7B.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops -j2; stage saker +
#   gpu_backend_ops + libgomp in .stage/s15e as s15_bin.tgz; ./build-gpu/saker quantize -m
#   ../shared/data/stories260K/stories260K.bin --tokenizer ../shared/data/stories260K/tok512.bin
#   --method rtn --group 32 -o .stage/s15q/st260_rtn. Carry [".stage/s15e", ".stage/s15q"].
. "$(dirname "$0")/device_lib.sh"
dev_init s15c "${1:-.stage/s15e}"
dev_unpack s15_bin.tgz
STEPS=${STEPS:-"ck eng"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs,"
Q=$PWD/.stage/s15q/st260_rtn
for st in $STEPS; do
    case $st in
    ck) for g in carry norm_matmul w4 fused; do
            step check_$g 240 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done
        grep -h "carry" "$R/check_carry.log" | head -20
        for d in cpu cuda; do
            "$S/saker" generate -m "$Q" --device $d -p "Once upon a time" -n 64 --temp 0 > "$R/gen_$d.txt" 2> "$R/gen_$d.err"
        done
        SAKER_NORM_CARRY=0 "$S/saker" generate -m "$Q" --device cuda -p "Once upon a time" -n 64 --temp 0 > "$R/gen_cuda_nocarry.txt" 2> "$R/gen_cuda_nocarry.err"
        SAKER_NORM_CARRY=all "$S/saker" generate -m "$Q" --device cuda -p "Once upon a time" -n 64 --temp 0 > "$R/gen_cuda_all.txt" 2> "$R/gen_cuda_all.err"
        for v in cuda cuda_nocarry cuda_all; do
            if cmp -s "$R/gen_cpu.txt" "$R/gen_$v.txt"; then echo "e2e $v: same text as cpu ($(wc -c < "$R/gen_cpu.txt") bytes)"; else echo "e2e $v: DIFFERS from cpu"; diff "$R/gen_cpu.txt" "$R/gen_$v.txt" | head -5; fi
        done
        pack ;;
    eng) for i in 1 2; do
            dev_b1 70on$i llama2-70b 1 A=1
            dev_b1 70off$i llama2-70b 1 SAKER_NORM_CARRY=0
            dev_b1 70qkv$i llama2-70b 1 SAKER_NORM_CARRY=qkv
            dev_b1 70mlp$i llama2-70b 1 SAKER_NORM_CARRY=mlp
        done
        for v in 1 0 qkv mlp; do dev_b1 70b2_$v llama2-70b 2 SAKER_NORM_CARRY=$v; done
        for i in 1 2; do for v in 1 0 qkv mlp; do dev_b1 7_${v}_$i llama2-7b 1 SAKER_NORM_CARRY=$v; done; done ;;
    final) for i in 1 2; do
            dev_b1 70def$i llama2-70b 1 A=1
            dev_b1 70off$i llama2-70b 1 SAKER_NORM_CARRY=0
            dev_b1 70b2def$i llama2-70b 2 A=1
            dev_b1 70b2off$i llama2-70b 2 SAKER_NORM_CARRY=0
            dev_b1 7def$i llama2-7b 1 A=1
            dev_b1 7off$i llama2-7b 1 SAKER_NORM_CARRY=0
        done ;;
    v3) for i in 1 2; do # the ADD epilogue's sums by shuffles (third version): each carry alone
            dev_b1 70def$i llama2-70b 1 A=1
            dev_b1 70off$i llama2-70b 1 SAKER_NORM_CARRY=0
            dev_b1 70all$i llama2-70b 1 SAKER_NORM_CARRY=all
            dev_b1 70qkv$i llama2-70b 1 SAKER_NORM_CARRY=qkv
            dev_b1 70b2def$i llama2-70b 2 A=1
            dev_b1 70b2off$i llama2-70b 2 SAKER_NORM_CARRY=0
            dev_b1 70b2all$i llama2-70b 2 SAKER_NORM_CARRY=all
            dev_b1 7def$i llama2-7b 1 A=1
            dev_b1 7off$i llama2-7b 1 SAKER_NORM_CARRY=0
            dev_b1 7all$i llama2-7b 1 SAKER_NORM_CARRY=all
        done ;;
    qcfg) for i in 1 2; do # qkv's configuration with its norm carried (T = 2: the default carry; T = 1: qkv's)
            for c in 7 5 8 6; do dev_b1 70b2_st${c}_$i llama2-70b 2 SAKER_W4_TQ_STORE=$c; done
            for c in 5 8 7; do dev_b1 70q_st${c}_$i llama2-70b 1 SAKER_NORM_CARRY=qkv SAKER_W4_TQ_STORE=$c; done
            dev_b1 70def_$i llama2-70b 1 A=1
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
