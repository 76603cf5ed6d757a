#!/bin/bash
# Session 14, fourth and fifth calls: sk_w4_tq_kernel's RS1 ring now also carries each step's x
# (and gamma with the fused norm) D steps ahead (ncu's source counters: the RS0 kernels waited
# on the per-step x load for 30-45% of their stall samples).
#  wb     (stage .stage/s14e: dev_gemv_w4) dev_gemv_w4 check, then s9 (qkv, o, down: the
#         backend's launch against tq configurations 1..8);
#  eng    (stage .stage/s14f: saker, gpu_backend_ops) gpu_backend_ops w4; Llama-2-70B INT4 batch
#         1 (128/256) with the default (ADD: tq 5), ADD off, each STORE (qkv) configuration 5..8,
#         ADD 6..8; 7B default against ADD off.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemv_w4 -j2; stage
#   dev_gemv_w4 + libgomp in .stage/s14e, saker + gpu_backend_ops + libgomp in .stage/s14f, each
#   as s14e_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14e "${1:-.stage/s14e}"
dev_unpack s14e_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs,"
b1() { dev_b1 "$1" "$2" 1 "${@:3}"; } # name shape env...
for st in $STEPS; do
    case $st in
    wb) step check 300 "$S/dev_gemv_w4" check
        grep -E "FAIL|RESULT|runs" "$R/check.log" | tail -3
        step s9 300 "$S/dev_gemv_w4" s9
        sed -n '/^Best tq/,$p' "$R/s9.log" ;;
    eng) step check_be 240 "$S/gpu_backend_ops" w4
        tail -1 "$R/check_be.log"
        b1 def1 llama2-70b A=1
        b1 add0_1 llama2-70b SAKER_W4_TQ_ADD=0
        for c in 5 6 7 8; do b1 st$c llama2-70b SAKER_W4_TQ_STORE=$c; done
        for c in 6 7 8; do b1 add$c llama2-70b SAKER_W4_TQ_ADD=$c; done
        b1 def2 llama2-70b A=1
        b1 add0_2 llama2-70b SAKER_W4_TQ_ADD=0
        b1 7def llama2-7b A=1
        b1 7add0 llama2-7b SAKER_W4_TQ_ADD=0
        b1 7st5 llama2-7b SAKER_W4_TQ_STORE=5
        b1 7st7 llama2-7b SAKER_W4_TQ_STORE=7 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
