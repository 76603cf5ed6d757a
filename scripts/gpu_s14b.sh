#!/bin/bash
# Session 14, second call: the decode GEMVs' weight ring in shared memory (RS1: cp.async per lane,
# read back by the same lane; the ring's registers freed so that deeper rings fit), in
# sk_w4_ts_kernel (gate/up, SAKER_W4_TQ_SW=5..8) and sk_w4_tq_kernel (qkv SAKER_W4_TQ_STORE=5..8,
# o/down SAKER_W4_TQ_ADD=5..8).
#  check  dev_gemv_w4 check (every variant, the new RS1 ones included);
#  sw     dev_gemv_w4 sw (gate/up: the backend's launch against ts configurations 1..8);
#  s9     dev_gemv_w4 s9 (qkv, o, down: the backend's launch against tq configurations 1..8);
#  b1     70B INT4 batch 1 128/256 with each configuration in the engine, and combinations.
# Here: cmake --build build-gpu --target saker_cli dev_gemv_w4 gpu_backend_ops -j2; stage
#   build-gpu/saker, build-gpu/dev_gemv_w4 and libgomp in .stage/s14b as s14b_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14b "${1:-.stage/s14b}"
dev_unpack s14b_bin.tgz
STEPS=${STEPS:-"b1 check sw s9"}
STEP_PATTERN="FAIL\|failed\|RESULT\|runs,"
b1() { dev_b1 "$1" llama2-70b 1 "${@:2}"; } # name env...
for st in $STEPS; do
    case $st in
    check) step check 300 "$S/dev_gemv_w4" check
        grep -E "FAIL|RESULT|runs" "$R/check.log" | tail -5 ;;
    sw) step sw 300 "$S/dev_gemv_w4" sw
        sed -n '/^Best ts/,$p' "$R/sw.log" ;;
    s9) step s9 300 "$S/dev_gemv_w4" s9
        sed -n '/^Best tq/,$p' "$R/s9.log" ;;
    b1)
        b1 def1 A=1
        for c in 5 6 7 8; do b1 sw$c SAKER_W4_TQ_SW=$c; done
        for c in 5 6 7 8; do b1 add$c SAKER_W4_TQ_ADD=$c; done
        for c in 5 6 7 8; do b1 st$c SAKER_W4_TQ_STORE=$c; done
        b1 def2 A=1
        b1 c1 SAKER_W4_TQ_SW=6 SAKER_W4_TQ_ADD=5 SAKER_W4_TQ_STORE=5
        b1 c2 SAKER_W4_TQ_SW=7 SAKER_W4_TQ_ADD=6 SAKER_W4_TQ_STORE=6
        b1 c3 SAKER_W4_TQ_SW=5 SAKER_W4_TQ_ADD=7 SAKER_W4_TQ_STORE=8
        b1 def3 A=1 ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
