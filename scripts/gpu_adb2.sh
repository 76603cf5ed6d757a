#!/bin/bash
# Session 13, branch wt-adb2: decode kernel 2's ring filled by the bulk-copy engine (cfg.bulk:
# rb2/rb4 = two cp.async.bulk a chunk into plain rows, rp2/rp4 = one a row into padded, shifted
# rows; a per-slot mbarrier) against the cp.async ring (r2/r4) and torch SDPA. Built, not yet
# run on a GPU when written: check first.
#  check  workbench correctness over the ring configurations (AD_CFGS "r2 ,r4 ,rb,rp": cp.async
#         and bulk rings, every warps count / wq, splits 1/2/3/7/64 and the plan, every case:
#         page sizes 16-128, lengths not multiples of 16, groups 1..71), kernel 4 left out;
#  san    compute-sanitizer memcheck (case "g8 hd128 ps16 sharp") and racecheck (case
#         "g8 hd64 ps32", smaller) on the bulk configurations only;
#  time   workbench timing of the ring configurations at 1 split and the plan's on the torch
#         comparison shapes (g8 64 q / 8 kv heads and MHA 64 / 64, head_dim 128, 64 x 4096 and
#         256 x 1024): pages in pool order of 128 tokens, then a random permutation of 16;
#  torch  bench/attention_decode_torch.py on the same shapes (contiguous K/V);
#  bops   gpu_backend_ops decode and paged (bf16) with SAKER_ATTN_G8CFG=warps,ring,prefetch,bulk
#         for each of $BOPS_CFGS (default 1,2,0,1 1,2,0,2; also try 2,4,0,1 2,4,0,2): the decode
#         test's SmolLM2 shape (head_dim 64, group 3) and the paged test's g4 hd128 and MHA hd64
#         shapes take the setting (stderr says "taken").
# Each step's timeouts add up to under 10 minutes (one device call); run them in separate calls:
#   STEPS="check torch", STEPS=time, STEPS=bops, STEPS=san.
# Here: cmake --build build-gpu --target dev_attention_decode gpu_backend_ops -j2; mkdir -p
#   .stage/adb2 && cp build-gpu/dev_attention_decode build-gpu/tests/gpu_backend_ops
#   /lib/x86_64-linux-gnu/libgomp.so.1 .stage/adb2/ && strip .stage/adb2/{dev_*,gpu_*} &&
#   (cd .stage/adb2 && tar czf adb2_bin.tgz dev_* gpu_* libgomp.so.1 && rm dev_* gpu_* libgomp.so.1)
# On the device: carry [".stage/adb2"], STEPS="..." bash scripts/gpu_adb2.sh
. "$(dirname "$0")/device_lib.sh"
N=${ADB2_NAME:-adb2} # a name per GPU when two run side by side
dev_init $N "${1:-.stage/adb2}"
dev_unpack adb2_bin.tgz
STEPS=${STEPS:-"check torch"}
BOPS_CFGS=${BOPS_CFGS:-"1,2,0,1 1,2,0,2"}
STEP_PATTERN="FAIL\|RESULT\|runs,\|failures\|ERROR SUMMARY\|RACECHECK SUMMARY\|best:\|G8CFG"
SH="llama70b g8 b64x4096,llama70b g8 b256x1024,llama70b-mha g1 b64x4096,llama70b-mha g1 b256x1024"
RINGS="r2 ,r4 ,rb,rp"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv,noheader > "$R/gpu.txt" 2>&1
for st in $STEPS; do
    case $st in
    check)
        step check 300 env AD_CFGS="$RINGS" AD_NO_MQ=1 stdbuf -oL "$S/dev_attention_decode" check
        grep "ring slot layouts\|runs, " "$R/check.log" ;;
    san)
        step memcheck 270 env AD_CFGS="rb,rp" AD_NO_MQ=1 AD_CASES="g8 hd128 ps16 sharp" \
            stdbuf -oL compute-sanitizer --tool memcheck --print-limit 20 "$S/dev_attention_decode" check
        step racecheck 270 env AD_CFGS="rb,rp" AD_NO_MQ=1 AD_CASES="g8 hd64 ps32" stdbuf -oL \
            compute-sanitizer --tool racecheck --print-limit 20 "$S/dev_attention_decode" check ;;
    time)
        for v in ord128:1:128 rand16:0:16; do
            IFS=: read -r n o p <<< "$v"
            step time_$n 270 env AD_SHAPES="$SH" AD_CFGS="$RINGS" AD_NS=1 AD_NO_L2PF=1 AD_NO_MQ=1 \
                AD_ORDERED=$o AD_PS=$p stdbuf -oL "$S/dev_attention_decode" time
            grep -A8 "^SUMMARY" "$R/time_$n.log"
        done ;;
    torch)
        step torch 150 python3 bench/attention_decode_torch.py --shapes "$SH"
        grep -A12 "^SUMMARY" "$R/torch.log" ;;
    bops)
        for c in $BOPS_CFGS; do
            for g in decode paged; do
                step bops_${g}_${c//,/_} 120 env SAKER_ATTN_G8CFG=$c stdbuf -oL \
                    "$S/gpu_backend_ops" $g bf16
            done
        done ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
