#!/bin/bash
# Session 13, the L2 prefetch-size hint on decode attention kernel 2 (torch's cuDNN reads K/V at
# up to 4.58 TB/s, the read probe's plain loads at 4.49-4.52):
#  probe2  dev_read_probe sweep (ld and cp.async with .L2::128B / .L2::256B next to none);
#  l2h     dev_attention_decode built with SK_AD_L2HINT = 0 (the backend's), 128 and 256: the
#          self-check of each, then the timing of every configuration at 1 split and the plan's
#          on the torch comparison shapes (g8 and MHA, 64 x 4096 and 256 x 1024, pages in pool
#          order of 128 tokens), in the order 0, 256, 128, 0; torch SDPA in the same call.
# Here: cmake --build build-gpu --target dev_attention_decode dev_read_probe; nvcc the workbench
#   with -DSK_AD_L2HINT=128 / 256 (CMake's flags); stage the four binaries in .stage/s13b as
#   s13b_bin.tgz (dev_attention_decode_h0/h128/h256, dev_read_probe).
. "$(dirname "$0")/device_lib.sh"
dev_init s13b "${1:-.stage/s13b}"
dev_unpack s13b_bin.tgz
STEPS=${STEPS:-"probe2 l2h"}
STEP_PATTERN="FAIL\|RESULT\|runs,\|failures\|best:"
SH="llama70b g8 b64x4096,llama70b g8 b256x1024,llama70b-mha g1 b64x4096,llama70b-mha g1 b256x1024"
for st in $STEPS; do
    case $st in
    probe2) step probe2 120 "$S/dev_read_probe" sweep
        grep "L2::\|^| ld | ld U8 il 4/SM |\|^| cpa | cpa S8K R2 W4 il 2/SM |" "$R/probe2.log" | sort -t'|' -k5 -r | head -30 ;;
    l2h)
        for h in 0 256 128; do
            step check_h$h 120 env AD_NO_MQ=1 "$S/dev_attention_decode_h$h" check
        done
        step torch 150 python3 bench/attention_decode_torch.py --shapes "$SH"
        grep -A6 "^SUMMARY" "$R/torch.log"
        for h in 0 256 128 0; do
            n=time_h$h; [ -f "$R/$n.log" ] && n=${n}_again
            step $n 150 env AD_SHAPES="$SH" AD_NS=1 AD_NO_L2PF=1 AD_NO_MQ=1 AD_ORDERED=1 AD_PS=128 \
                "$S/dev_attention_decode_h$h" time
            grep -A6 "^SUMMARY" "$R/$n.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
