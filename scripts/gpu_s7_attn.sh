#!/bin/bash
# Session 7: issue 3's last decode bar (faster than torch SDPA at group 8 and MHA) and issue 5's
# missing engine point, in one call.
#  1. kernel 2 at every configuration x splits 1/2/3/4/6/8 (AD_NS; no l2pf, no kernel 4) on the
#     g8 and MHA shapes: pages a random permutation of the pool (as the engine's may be), then
#     pages in pool order at 16 and at 128 tokens (AD_ORDERED, AD_PS: the contiguous data the
#     torch comparison has), then torch SDPA on contiguous K/V, all in this call;
#  2. Llama-2-70B INT4 at 128/4096 with the largest batch that fits (--ctx-beyond-train: the
#     model's context is 4096).
# Here: cmake --build build-gpu --target saker_cli dev_attention_decode; mkdir -p .stage/at &&
#   cp build-gpu/saker build-gpu/dev_attention_decode /lib/x86_64-linux-gnu/libgomp.so.1
#   .stage/at/ && strip .stage/at/saker .stage/at/dev_*
. "$(dirname "$0")/device_lib.sh"
dev_init at "${1:-.stage/at}"
SH="llama70b g8 b64x4096,llama70b g8 b256x1024,llama70b-mha"
for v in rand:0:0 ord16:1:16 ord128:1:128; do
    IFS=: read -r n o p <<< "$v"
    step sw_$n 150 env AD_SHAPES="$SH" AD_NS=1,2,3,4,6,8 AD_NO_L2PF=1 AD_NO_MQ=1 AD_ORDERED=$o \
        AD_PS=$( [ "$p" = 0 ] || echo $p ) "$S/dev_attention_decode" time
    grep -A8 "^SUMMARY" "$R/sw_$n.log"
done
step torch 120 python3 bench/attention_decode_torch.py --shapes "llama70b g8 b64x4096,llama70b g8 b256x1024,llama70b-mha g1 b64x4096,llama70b-mha g1 b256x1024"
grep -A12 "^SUMMARY" "$R/torch.log"
step p128_4096 360 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch max \
    --isl 128 --osl 4096 --ctx-beyond-train
echo "done (+$(( $(date +%s) - T0 )) s)"
