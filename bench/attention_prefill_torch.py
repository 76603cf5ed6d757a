#!/usr/bin/env python3
"""PyTorch peer timing for dev/cuda/attention_prefill.cu: causal bf16 prefill attention through
torch.nn.functional.scaled_dot_product_attention on the workbench's timing shapes.

Run on the GPU machine:  python3 bench/attention_prefill_torch.py
For each shape it times SDPA with torch's own backend choice, then each backend forced in turn
(flash, cuDNN, efficient) where it accepts the shape, with CUDA events: 3 warm-ups, median of 15.
FLOPs = 4 * L^2 * D * H / 2 per sequence of L tokens (causal), the workbench's formula. The peak
is a bf16 torch.matmul 8192^3 (cuBLAS) in the same run. Inputs are random normal, contiguous
[B, H, L, D] (no paging: the peer reads K/V contiguously, the workbench's kernels through a
page table). GQA shapes pass enable_gqa=True; a backend that rejects it is reported as such.
"""
import statistics
import sys

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # older torch
    SDPBackend = None
    sdpa_kernel = None

# (what, batch, length, n_heads, n_kv_heads, head_dim): the workbench's k_times
SHAPES = [
    ("1x8192 D128 32/32 (Llama-7B)", 1, 8192, 32, 32, 128),
    ("1x8192 D128 64/8 GQA", 1, 8192, 64, 8, 128),
    ("2x4096 D128 32/32", 2, 4096, 32, 32, 128),
    ("16x1024 D128 32/32", 16, 1024, 32, 32, 128),
    ("1x8192 D64 232/8 (Falcon-180B)", 1, 8192, 232, 8, 64),
]


def median_ms(fn, warmup=3, reps=15):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return statistics.median(times)


def matmul_peak_tflops():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: torch.matmul(a, b), warmup=3, reps=10)
    return 2.0 * n ** 3 / (ms * 1e-3) / 1e12


def main():
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    peak = matmul_peak_tflops()
    print(f"bf16 matmul 8192^3: {peak:.0f} TFLOP/s (the peak below)")
    print("FLOPs = 4 * L^2 * D * H / 2 per sequence (causal)")
    backends = [("auto", None)]
    if SDPBackend is not None:
        backends += [("flash", SDPBackend.FLASH_ATTENTION),
                     ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    rows = []
    for what, B, L, H, KVH, D in SHAPES:
        q = torch.randn(B, H, L, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, KVH, L, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, KVH, L, D, device="cuda", dtype=torch.bfloat16)
        gqa = H != KVH
        flops = 4.0 * L * L * D * H / 2.0 * B
        ref = None
        for name, be in backends:
            def run():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            try:
                if be is None:
                    out = run()
                    ms = median_ms(run)
                else:
                    with sdpa_kernel([be]):
                        out = run()
                        ms = median_ms(run)
            except Exception as e:  # backend rejects the shape / the GQA flag
                msg = str(e).strip().splitlines()[0][:70] if str(e).strip() else type(e).__name__
                print(f"{what:34s} {name:9s} not available: {msg}")
                continue
            torch.cuda.synchronize()
            if ref is None:
                ref = out.float()
            else:  # backends must agree with the first one
                d = (out.float() - ref).norm() / ref.norm()
                if not d < 1e-2:
                    print(f"{what:34s} {name:9s} disagrees with auto: rel diff {d:.2e}")
            tf = flops / (ms * 1e-3) / 1e12
            print(f"{what:34s} {name:9s} {ms:9.3f} ms {tf:7.1f} TFLOP/s {100 * tf / peak:5.1f}%")
            rows.append((what, name, ms, tf))
        del q, k, v, ref
        torch.cuda.empty_cache()
    print(f"\n{'shape':34s} {'sdpa':9s} {'ms':>9s} {'TFLOP/s':>8s} {'%peak':>6s}")
    for what, name, ms, tf in rows:
        print(f"{what:34s} {name:9s} {ms:9.3f} {tf:8.1f} {100 * tf / peak:5.1f}%")
    print(f"bf16 matmul peak {peak:.0f} TFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
