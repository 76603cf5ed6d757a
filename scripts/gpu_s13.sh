#!/bin/bash
# Session 13, first call:
#  probe  dev_read_probe all: which read method reaches torch/cuDNN's 4.57 TB/s (sweep, 2 GiB),
#         and the best per-launch time of a read-only kernel at the 70B decode GEMV weight sizes
#         in a graph, with and without PDL (the bound for issue 5's batch-1 GEMVs);
#  race   compute-sanitizer racecheck of gpu_backend_ops decode bf16 with BOPS_DECODE_SMALL=1
#         (6 sequences, 7 steps: the whole-model decode path with its graphs; the full test ran
#         the 128 GB host out of memory under racecheck in session 12);
#  b1     70B INT4 batch 1 128/256 (the binary's baseline for this session);
#  skip   the same with each part of the Llama layer left out of the captured step (SAKER_SKIP),
#         what each part costs inside the graph now (session 10's table predates the ts kernel);
#  mem    compute-sanitizer memcheck of the same small decode test;
#  prof   ncu (full set, clocks not locked) on dev_gemv_w4 prof2: the backend's decode GEMVs at
#         T = 1 on the four 70B products (3 launches each), details and raw CSV kept;
#  bk3    dev_gemv_w4 check (every variant incl. the bulk-copy GEMV at ZC3, NS up to 8) and
#         dev_gemv_w4 bk3 (its timing against the backend's launch, T = 1, 70B and 7B).
# (race, second call: BOPS_DECODE_SMALL=1 now also keeps 2 of the 30 layers; the first call's
#  run at 30 layers was killed after ~57 s with no hazard reported.)
# Here: cmake --build build-gpu --target saker_cli gpu_backend_ops dev_read_probe -j2; stage
#   build-gpu/saker, build-gpu/tests/gpu_backend_ops, build-gpu/dev_read_probe and libgomp in
#   .stage/s13 as s13_bin.tgz
. "$(dirname "$0")/device_lib.sh"
dev_init s13 "${1:-.stage/s13}"
dev_unpack s13_bin.tgz
STEPS=${STEPS:-"probe race b1"}
STEP_PATTERN="FAIL\|failures\|ERROR SUMMARY\|RACECHECK SUMMARY\|hazard\|ITL\|output tok\|^-- \|RESULT"
for st in $STEPS; do
    case $st in
    probe) step probe 240 "$S/dev_read_probe" all
        sed -n '/^best:/,/^$/p' "$R/probe.log"; sed -n '/^## seq/,$p' "$R/probe.log" ;;
    race)
        BOPS_DECODE_SMALL=1 step race_decode 240 stdbuf -oL compute-sanitizer --tool racecheck \
            --print-limit 20 "$S/gpu_backend_ops" decode bf16
        tail -5 "$R/race_decode.log" ;;
    mem)
        BOPS_DECODE_SMALL=1 step mem_decode 240 stdbuf -oL compute-sanitizer --tool memcheck \
            --print-limit 20 "$S/gpu_backend_ops" decode bf16
        tail -3 "$R/mem_decode.log" ;;
    prof)
        step prof 300 ncu --clock-control none --set full -k 'regex:sk_w4_t[cqs]_kernel' -o "$R/prof" \
            "$S/dev_gemv_w4" prof2
        ncu -i "$R/prof.ncu-rep" --page details > "$R/prof_details.txt" 2>&1
        ncu -i "$R/prof.ncu-rep" --page raw --csv > "$R/prof_raw.csv" 2>&1
        grep -E "sk_w4_t|Duration|DRAM Throughput|Issued Warp|Eligible Warps|Active Warps Per|Registers Per" \
            "$R/prof_details.txt" | head -120; pack ;;
    bk3)
        step gemv_check 300 "$S/dev_gemv_w4" check
        grep -E "FAIL|RESULT|runs" "$R/gemv_check.log" | tail -5
        step bk3 300 "$S/dev_gemv_w4" bk3
        sed -n '/^| shape | backend (no norm)/,$p' "$R/bk3.log" ;;
    skip)
        for sk in none qkv attn o mlp down qkv,attn,o,mlp,down; do
            SAKER_SKIP=$([ $sk = none ] || echo $sk) step skip_${sk//,/_} 60 "$S/saker" bench \
                --device cuda --shape llama2-70b --weights int4 --batch 1 --isl 128 --osl 256
        done
        grep -H "^| 128" "$R"/skip_*.log | sed 's/|[^|]*|[^|]*|[^|]*|[^|]*|\([^|]*\)|[^|]*|[^|]*|[^|]*|[^|]*|\([^|]*\)|.*/| \1 | ITL \2 |/' ;;
    b1) step b1 60 "$S/saker" bench --device cuda --shape llama2-70b --weights int4 --batch 1 \
            --isl 128 --osl 256
        grep "^| 1" "$R/b1.log" ;;
    esac
done
echo "done (+$(( $(date +%s) - T0 )) s)"
