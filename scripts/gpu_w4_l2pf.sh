#!/bin/bash
# Session 7: the W4 decode GEMV with SAKER_W4_L2PF=1 (each block bulk-prefetches its weight rows
# into L2 at its start) against without, same binaries, same call: the workbench's checks and
# per-shape timing (dev_gemv_w4 gemv: every tc variant and the backend's pick go through the
# switch), gpu_backend_ops w4 with it, and the engine at batch 1 (70B and 7B INT4).
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_gemv_w4; mkdir -p
#   .stage/pf && cp build-gpu/saker build-gpu/tests/gpu_backend_ops build-gpu/dev_gemv_w4
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/pf/ && strip .stage/pf/saker .stage/pf/*_*
. "$(dirname "$0")/device_lib.sh"
dev_init pf "${1:-.stage/pf}"
step gemv0 150 "$S/dev_gemv_w4" gemv
step gemv1 150 env SAKER_W4_L2PF=1 "$S/dev_gemv_w4" gemv
paste -d'\n' <(grep "backend's pick" "$R/gemv0.log") <(grep "backend's pick" "$R/gemv1.log")
step bops1 100 env SAKER_W4_L2PF=1 "$S/gpu_backend_ops" w4
for m in llama2-70b llama2-7b; do
    F="bench --device cuda --shape $m --weights int4 --batch 1 --isl 128 --osl 128"
    for r in 1 2; do
        step e_${m}_0_$r 60 "$S/saker" $F
        step e_${m}_1_$r 60 env SAKER_W4_L2PF=1 "$S/saker" $F
    done
done
echo "done (+$(( $(date +%s) - T0 )) s)"
