"""PyTorch peer timing for decode attention, on the shapes of dev/cuda/attention_decode.cu.

    python3 bench/attention_decode_torch.py [--reps 30] [--warmup 5] [--shapes all|NAME,...]

For each shape: torch.nn.functional.scaled_dot_product_attention with q [B, H, 1, D] and
contiguous K/V [B, KVH, L, D] (bf16, uniform in [-1, 1]; never zeros), enable_gqa=True when
H != KVH, timed with CUDA events around each call, warm-up, median of --reps. Each SDPA backend
(flash, efficient, cudnn, math and torch's default choice) is tried separately and reported, or
marked as not supported. K/V are rotated over enough copies to exceed 3 x L2 (as the workbench
does). KV TB/s = K+V bytes of all sequences / time; the device-to-device copy bandwidth of a 2 GB
buffer (bytes read + written / time) is measured in the same run as the ceiling.

Note: contiguous K/V is the best case for torch (no page table); the workbench's kernels read
a paged pool with a random page permutation.
"""
import argparse
import math
import statistics

import torch
import torch.nn.functional as F

SHAPES = [
    # name, H, KVH, D, batch, len
    ("llama70b g8 b64x4096", 64, 8, 128, 64, 4096),
    ("llama70b g8 b256x1024", 64, 8, 128, 256, 1024),
    ("llama70b g8 b64x2048", 64, 8, 128, 64, 2048),
    ("llama70b g8 b64x8192", 64, 8, 128, 64, 8192),
    ("llama70b g8 b128x4096", 64, 8, 128, 128, 4096),
    ("falcon180b g29 b64x4096", 232, 8, 64, 64, 4096),
    ("falcon180b g29 b1x32768", 232, 8, 64, 1, 32768),
    ("falcon40b g16 b64x4096", 128, 8, 64, 64, 4096),
    ("llama70b-mha g1 b64x4096", 64, 64, 128, 64, 4096),
    ("llama70b-mha g1 b256x1024", 64, 64, 128, 256, 1024),
    ("llama70b-mqa g64 b64x4096", 64, 1, 128, 64, 4096),
    ("llama70b-mqa g64 b256x1024", 64, 1, 128, 256, 1024),
]


def median_time_us(fn, inputs, warmup, reps):
    """Median over reps of one call's time (us), rotating over the input sets."""
    for i in range(warmup):
        fn(*inputs[i % len(inputs)])
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        args = inputs[(i + warmup) % len(inputs)]
        starts[i].record()
        fn(*args)
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends))


def copy_bandwidth(warmup=1, reps=11):
    n = 2 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda").fill_(0x3C)
    b = torch.empty_like(a)
    us = median_time_us(lambda x, y: y.copy_(x), [(a, b)], warmup, reps)
    del a, b
    torch.cuda.empty_cache()
    return 2.0 * n / (us * 1e-6)


def backends():
    from torch.nn.attention import SDPBackend

    out = [("default", None)]
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        if hasattr(SDPBackend, name):
            out.append((name.lower(), getattr(SDPBackend, name)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--shapes", default="all")
    args = ap.parse_args()
    from torch.nn.attention import sdpa_kernel

    prop = torch.cuda.get_device_properties(0)
    l2 = getattr(prop, "L2_cache_size", 60 << 20)
    print(f"device: {prop.name}, torch {torch.__version__}, L2 {l2 / 1e6:.0f} MB")
    bw = copy_bandwidth()
    print(f"D2D copy bandwidth (2 GB, read + write): {bw / 1e12:.3f} TB/s")
    want = None if args.shapes == "all" else set(args.shapes.split(","))
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    summary = []
    for name, H, KVH, D, B, L in SHAPES:
        if want is not None and name not in want:
            continue
        kv_bytes = 2.0 * B * KVH * L * D * 2
        copies = max(1, min(8, math.ceil(3.0 * l2 / kv_bytes)))

        def rnd(*shape):
            t = torch.empty(*shape, dtype=torch.bfloat16, device="cuda")
            return t.uniform_(-1.0, 1.0, generator=gen)

        q = rnd(B, H, 1, D)
        sets = [(q, rnd(B, KVH, L, D), rnd(B, KVH, L, D)) for _ in range(copies)]
        gqa = H != KVH
        print(f"\n{name}: H={H} KVH={KVH} D={D} batch={B} len={L}, KV {kv_bytes / 1e6:.1f} MB, "
              f"{copies} cop{'ies' if copies > 1 else 'y'}")
        best = None
        for bname, be in backends():
            def call(qq, kk, vv, be=be):
                if be is None:
                    return F.scaled_dot_product_attention(qq, kk, vv, enable_gqa=gqa)
                with sdpa_kernel([be]):
                    return F.scaled_dot_product_attention(qq, kk, vv, enable_gqa=gqa)
            try:
                call(*sets[0])
                torch.cuda.synchronize()
            except Exception as e:  # backend does not take this shape / GQA
                print(f"  sdpa {bname:20s} not supported: {str(e).splitlines()[0][:90]}")
                torch.cuda.synchronize()
                continue
            try:
                us = median_time_us(call, sets, args.warmup, args.reps)
            except torch.cuda.OutOfMemoryError:
                print(f"  sdpa {bname:20s} out of memory")
                torch.cuda.empty_cache()
                continue
            tbs = kv_bytes / (us * 1e-6) / 1e12
            print(f"  sdpa {bname:20s} {us:10.1f} us  {tbs:6.3f} TB/s  {100 * tbs * 1e12 / bw:5.1f}% of copy")
            if best is None or us < best[1]:
                best = (bname, us, tbs)
        summary.append((name, best))
        del q, sets
        torch.cuda.empty_cache()
    print(f"\nSUMMARY torch sdpa (copy {bw / 1e12:.3f} TB/s)")
    for name, best in summary:
        if best is None:
            print(f"{name:28s} no backend ran")
        else:
            print(f"{name:28s} {best[1]:10.1f} us {best[2]:7.3f} TB/s {100 * best[2] * 1e12 / bw:5.1f}% "
                  f"({best[0]})")


if __name__ == "__main__":
    main()
