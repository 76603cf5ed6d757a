#!/bin/bash
# Session 15: the tails the trace showed (gpu_s15.sh): gate/up (ts) drawing its tiles from a
# counter (SAKER_W4_TS_DYN, default on), and tq with K in parts (SAKER_W4_TQ_KP_ADD / _STORE).
#  tail (stage .stage/s15t: dev_gemv_w4) dev_gemv_w4 tail: the backend's launch on row counts
#       whose tiles come out even against the real ones (gate/up, o, down), qkv with and
#       without its norm.
#  chain (stage .stage/s15t) dev_gemv_w4 chain: the 70B layer's four products in one graph
#       against each alone and the chain without one.
#  ck   (stage .stage/s15c: dev_gemv_w4) dev_gemv_w4 checksw (ts, tiles from the counter) and check
#       (every tq configuration, the kp variants among them).
#  eng  (stage .stage/s15e: saker, gpu_backend_ops) gpu_backend_ops w4, norm_matmul, fused; 70B INT4
#       batch 1: default, DYN=0, KP_ADD 2 / 3, KP_STORE 2, alternating, two rounds; batch 2; 7B and
#       Falcon-180B with DYN on and off; SAKER_ATTN_EARLY 4 (the combine triggers o's launch at its
#       start) and 5 (the rope/store kernel too).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemv_w4 -j2; stage
#   dev_gemv_w4 + libgomp in .stage/s15c, saker + gpu_backend_ops + libgomp in .stage/s15e, each
#   as s15_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s15b "${1:-.stage/s15e}"
dev_unpack s15_bin.tgz
STEPS=${STEPS:-"eng"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs,"
for st in $STEPS; do
    case $st in
    tail) step tail 300 "$S/dev_gemv_w4" tail
        grep "^| " "$R/tail.log" ;;
    chain) step chain 300 "$S/dev_gemv_w4" chain
        grep "^| " "$R/chain.log" ;;
    ck) step checksw 300 "$S/dev_gemv_w4" checksw
        grep -E "FAIL|runs" "$R/checksw.log" | head -3
        step check 400 "$S/dev_gemv_w4" check
        grep -E "FAIL|runs" "$R/check.log" | head -3 ;;
    eng) for g in w4 norm_matmul fused; do
            step check_$g 240 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done
        for g in w4 norm_matmul; do # K in parts through the backend's launch
            step check_kp_$g 240 env SAKER_W4_TQ_KP_ADD=3 SAKER_W4_TQ_KP_STORE=2 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_kp_$g.log"
        done
        for i in 1 2; do
            dev_b1 70def$i llama2-70b 1 A=1
            dev_b1 70dyn0_$i llama2-70b 1 SAKER_W4_TS_DYN=0
            dev_b1 70kpa2_$i llama2-70b 1 SAKER_W4_TQ_KP_ADD=2
            dev_b1 70kpa3_$i llama2-70b 1 SAKER_W4_TQ_KP_ADD=3
            dev_b1 70kps2_$i llama2-70b 1 SAKER_W4_TQ_KP_STORE=2
            dev_b1 70e4_$i llama2-70b 1 SAKER_ATTN_EARLY=4
            dev_b1 70e5_$i llama2-70b 1 SAKER_ATTN_EARLY=5
        done
        dev_b1 70b2def llama2-70b 2 A=1
        dev_b1 70b2dyn0 llama2-70b 2 SAKER_W4_TS_DYN=0
        dev_b1 70b2kpa2 llama2-70b 2 SAKER_W4_TQ_KP_ADD=2
        dev_b1 7def llama2-7b 1 A=1
        dev_b1 7dyn0 llama2-7b 1 SAKER_W4_TS_DYN=0
        dev_b1 7kpa2 llama2-7b 1 SAKER_W4_TQ_KP_ADD=2
        dev_b1 7kpa4 llama2-7b 1 SAKER_W4_TQ_KP_ADD=4
        dev_b1 7def2 llama2-7b 1 A=1
        dev_b1 7e4 llama2-7b 1 SAKER_ATTN_EARLY=4
        dev_b1 180def falcon-180b 1 A=1
        dev_b1 180dyn0 falcon-180b 1 SAKER_W4_TS_DYN=0
        dev_b1 180kpa2 falcon-180b 1 SAKER_W4_TQ_KP_ADD=2 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
