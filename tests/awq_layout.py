#!/usr/bin/env python3
"""Reads an RTN-quantized AutoAWQ GEMM checkpoint the way AutoAWQ's dequantize_gemm does
(numpy, written from the format's description, independent of Saker's C code) and checks every
quantized Linear against the source HF checkpoint's fp32 weights: unpacking qweight/qzeros with
shifts 0..28 and the reverse order (0, 4, 1, 5, 2, 6, 3, 7), W^T = (iweight - izeros) * scales
(repeated over each group of rows), the error of every element must be within half a step
(scale / 2, plus the f16 rounding of the scale over 15 steps) and not zero overall. Falcon's fused QKV is compared in
the file's own (grouped) row order, so the layouts match without reordering.

usage: awq_layout.py SOURCE_DIR AWQ_DIR
"""
import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "BF16": np.uint16}


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=DT[v["dtype"]]).reshape(v["shape"])
        if v["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = a
    return out


def main():
    src, q = load(sys.argv[1] + "/model.safetensors"), load(sys.argv[2] + "/model.safetensors")
    g = json.load(open(sys.argv[2] + "/config.json"))["quantization_config"]["group_size"]
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    rev = np.array([0, 4, 1, 5, 2, 6, 3, 7])
    n_lin = 0
    for name in q:
        if not name.endswith(".qweight"):
            continue
        stem = name[: -len(".qweight")]
        qw, qz, sc = q[name].view(np.uint32), q[stem + ".qzeros"].view(np.uint32), q[stem + ".scales"]
        K, N = qw.shape[0], qw.shape[1] * 8
        iw = ((qw[:, :, None] >> shifts) & 0xF).reshape(K, -1)
        iz = ((qz[:, :, None] >> shifts) & 0xF).reshape(qz.shape[0], -1)
        order = (np.arange(N).reshape(-1, 8)[:, rev]).reshape(-1)
        iw, iz = iw[:, order], iz[:, order]
        s32 = sc.astype(np.float32)
        wt = (iw.astype(np.float32) - np.repeat(iz, g, axis=0)) * np.repeat(s32, g, axis=0)
        ref = src[stem + ".weight"].astype(np.float32).T  # [K, N]
        err = np.abs(wt - ref)
        # half a step, plus 15 steps of the scale's f16 rounding (2^-11) at the top of the range
        bound = np.repeat(s32, g, axis=0) * (0.5 + 15 * 2.0**-11 * 1.01) + 1e-7
        bad = int((err > bound).sum())
        assert wt.shape == ref.shape, (stem, wt.shape, ref.shape)
        assert bad == 0, f"{stem}: {bad} elements beyond half a step (max err/step {float((err / bound).max()):.3f})"
        assert err.mean() > 0, f"{stem}: no quantization error at all"
        n_lin += 1
    assert n_lin > 0, "no quantized Linear in the checkpoint"
    print(f"awq_layout: {n_lin} Linears read as AutoAWQ does are within half a step of the source")


main()
