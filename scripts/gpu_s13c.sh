#!/bin/bash
# Session 13, decode kernel 2 with the L2::128B loads by default and the entry's ring rule
# (sk_ad_entry_cfg: no ring where the ring's blocks would need 1-1.5 waves and the ring-less
# ones fit in one):
#  check  the workbench's self-check (every configuration, every split, every case);
#  time   the torch comparison shapes (g8 and MHA at 64 x 4096 and 256 x 1024, Falcon-180B g29
#         64 x 4096 and 1 x 32768; pages in pool order of 128 tokens), every configuration at one
#         split and the entry: this binary, session 13's first (L2 hint 0, old entry), this
#         binary again; torch SDPA between them;
#  bops   gpu_backend_ops attention, paged, decode (bf16 and fp16);
#  e2e    70B INT4 batch 1 128/256 and batch 139 1024/64 (engine points on the changed path);
#  p4096  70B INT4 128/4096 at the largest batch, default against SAKER_ATTN_G8CFG=2,2,0 (two warps
#         and a ring of 2 were 5% faster at its last step, 72 x 4,224, in session 12's workbench).
# The session's last call (the entry with both rules): STEPS="check time bops e2e p4096"
#   TIME_BINS=dev_attention_decode P4096_CFGS=default.
# Here: cmake --build build-gpu --target dev_attention_decode gpu_backend_ops saker_cli; stage
#   dev_attention_decode (new), dev_attention_decode_h0 (s13b's), gpu_backend_ops, saker and
#   libgomp in .stage/s13c as s13c_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s13c "${1:-.stage/s13c}"
dev_unpack s13c_bin.tgz
STEPS=${STEPS:-"check time bops e2e p4096"}
STEP_PATTERN="FAIL\|RESULT\|checks,\|failures\|ITL\|output tok"
SH="llama70b g8 b64x4096,llama70b g8 b256x1024,llama70b-mha g1 b64x4096,llama70b-mha g1 b256x1024,falcon180b g29 b64x4096,falcon180b g29 b1x32768"
for st in $STEPS; do
    case $st in
    check) step check 150 env AD_NO_MQ=1 "$S/dev_attention_decode" check ;;
    time)
        i=0
        for b in ${TIME_BINS:-dev_attention_decode dev_attention_decode_h0 torch dev_attention_decode}; do
            i=$((i + 1))
            if [ $b = torch ]; then
                step torch 150 python3 bench/attention_decode_torch.py --shapes "$SH"
                grep -A8 "^SUMMARY" "$R/torch.log"
                continue
            fi
            step time_${i}_$b 150 env AD_SHAPES="$SH" AD_NS=1 AD_NO_L2PF=1 AD_ORDERED=1 AD_PS=128 \
                "$S/$b" time
            grep -A9 "^SUMMARY" "$R/time_${i}_$b.log"
        done ;;
    bops) for g in attention paged decode; do step bops_$g 150 "$S/gpu_backend_ops" $g; done ;;
    e2e)
        step b1 60 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256
        step b139 90 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch 139 --isl 1024 --osl 64
        grep -h "^| [0-9]" "$R/b1.log" "$R/b139.log" ;;
    p4096)
        for c in ${P4096_CFGS:-default 2,2,0}; do
            if [ $c = default ]; then E=""; else E="SAKER_ATTN_G8CFG=$c"; fi
            step p4096_${c//,/_} 280 env $E "$S/saker" bench --device cuda --shape llama2-70b \
                --weights int4 --batch max --isl 128 --osl 4096 --ctx-beyond-train
            grep -h "^| 128" "$R/p4096_${c//,/_}.log"
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
