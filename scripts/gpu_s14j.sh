#!/bin/bash
# Session 14, scale words in the RS1 ring (NOT KEPT: 27% slower a 70B step; the change was reverted,
# this script and awq-speed.md are the record) (sk_w4_tq_kernel: 4-byte cp.async into the slot,
# no register loads left in the loop; ncu had o's last long-scoreboard wait on them).
#  wb   (stage .stage/s14j: dev_gemv_w4) dev_gemv_w4 check, then s9;
#  eng  (stage .stage/s14k: saker, gpu_backend_ops) gpu_backend_ops w4 and norm_matmul; 70B INT4
#       batch 1 default (STORE 5 / ADD 6) against STORE 8 and STORE 7, alternating; 7B, Falcon-180B.
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemv_w4 -j2; stage
#   dev_gemv_w4 + libgomp in .stage/s14j, saker + gpu_backend_ops + libgomp in .stage/s14k, each
#   as s14j_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14j "${1:-.stage/s14j}"
dev_unpack s14j_bin.tgz
STEPS=${STEPS:-"wb"}
STEP_PATTERN="FAIL\|failures\|RESULT\|runs,"
for st in $STEPS; do
    case $st in
    wb) step check 300 "$S/dev_gemv_w4" check
        grep -E "FAIL|runs" "$R/check.log" | head -2
        step s9 300 "$S/dev_gemv_w4" s9
        sed -n '/^Best tq/,$p' "$R/s9.log" ;;
    eng) for g in w4 norm_matmul; do
            step check_$g 240 "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_$g.log"
        done
        for i in 1 2; do
            dev_b1 70def$i llama2-70b 1 A=1
            dev_b1 70st8_$i llama2-70b 1 SAKER_W4_TQ_STORE=8
            dev_b1 70st7_$i llama2-70b 1 SAKER_W4_TQ_STORE=7
            dev_b1 70add5_$i llama2-70b 1 SAKER_W4_TQ_ADD=5
        done
        dev_b1 70b2def llama2-70b 2 A=1
        dev_b1 7def llama2-7b 1 A=1
        dev_b1 180def falcon-180b 1 A=1 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
