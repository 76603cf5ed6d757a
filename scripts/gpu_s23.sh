#!/bin/bash
# Session 23: the SwiGLU decode GEMV with its weights brought by TMA boxes of 8 steps
# (sk_w4_tb_kernel, w4_tb.cuh: ts configurations 9..12).
# Steps (STEPS):
#   ckw   dev_gemv_w4 checksw: every ts / tb configuration against the double reference (SwiGLU,
#         T = 1, 2, with and without the fused norm)
#   wck   dev_gemv_w4 check: every configuration (the tba ADD configurations 9..11 among them)
#   s9    dev_gemv_w4 s9: qkv / o / down, tq configurations 5..8 against tba 9..11
#   swtm  dev_gemv_w4_tm sw: the same as sw with tb reading q4 as if tile-major (timing only)
#   sw    dev_gemv_w4 sw: the backend's launch against configurations 1..12, 70B and 7B gate/up
#   eab   the engine at batch 1..2 (AB_B model:batch), SAKER_W4_TB=0 (the session-22 picks) / the
#         new default / each of AB_V (an environment assignment each), two rounds
#   eb    gpu_engine_batch with EBARGS
#   ck    gpu_backend_ops groups (CKG) with CKENV
# Staging: .stage/s23 (s23_bin.txz: dev_gemv_w4 and the engine's binaries as staged).
. "$(dirname "$0")/device_lib.sh"
dev_init s23${TAG:-} "${1:-.stage/s23}"
for f in s23_bin.txz s23_eng.txz; do [ -f "$S/$f" ] && dev_unpack $f; done
STEPS=${STEPS:-"ckw sw"}
STEP_PATTERN="FAIL\|RESULT\|checks:\|SUMMARY"
for st in $STEPS; do
    case $st in
    ckw) step ckw 400 "$S/dev_gemv_w4" checksw
         grep "checks\|FAIL" "$R/ckw.log" | head -20 ;;
    wck) step wck 500 "$S/dev_gemv_w4" check
         grep "checks\|FAIL" "$R/wck.log" | head -20 ;;
    s9) step s9 400 "$S/dev_gemv_w4" s9
        grep -A20 "^Best tq" "$R/s9.log" ;;
    swtm) step swtm 400 "$S/dev_gemv_w4_tm" sw
        grep -A12 "^Best" "$R/swtm.log" ;;
    sw) step sw 400 "$S/dev_gemv_w4" sw
        grep -A12 "^Best" "$R/sw.log"
        grep "tb \|backend" "$R/sw.log" | head -60 ;;
    eab) for round in 1 2; do
            for mb in ${AB_B:-llama2-70b:1 llama2-7b:1 llama2-70b:2}; do
                m=${mb%%:*} b=${mb##*:}
                dev_b1 ${m}_b${b}_old_r$round $m $b SAKER_W4_TB=0
                dev_b1 ${m}_b${b}_new_r$round $m $b SAKER_NOOP=1
                for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=]/_}_r$round $m $b $v; done
            done
         done ;;
    eb) [ -x "$S/gpu_engine_batch" ] || exit 1
        step eb 400 "$S/gpu_engine_batch" $EBARGS
        tail -3 "$R/eb.log" ;;
    ck) for g in ${CKG:-w4 fused}; do
            step check_${g}${TAG} 300 env $CKENV "$S/gpu_backend_ops" $g bf16
            tail -1 "$R/check_${g}${TAG}.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
