#!/usr/bin/env python3
"""CPU emulation of sk_w4_tc_kernel's arithmetic at T = 1 (ZC 2, 3, 4) against a float64
reference, to predict the workbench's max|err| / sum|x w| (not a GPU measurement).
Tensor-core model (pessimistic, after Fasi et al.'s A100 findings): products exact; each MMA's
16 products and its fp32 addend c aligned to the largest of them and truncated to 24 bits
below its leading bit, summed exactly, the sum truncated (toward zero) to fp32 ('rn': exact sum
rounded to nearest instead). Data as dev/cuda/gemv_w4.cu's check draws them (nibbles, z 0..15,
d in [0.001, 0.02], x uniform in [-1, 1)); steps shared out over KS = 8 warps as the kernel.
usage: python3 dev/notes/w4_zc_emu.py [seed] [trunc|rn]   (a few minutes)"""
import numpy as np, sys
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
def f16(a): return np.asarray(a, np.float64).astype(np.float16).astype(np.float64)
def f32(a): return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)
def rz32(a):
    """float64 -> fp32 toward zero"""
    r = np.asarray(a, np.float64).astype(np.float32)
    over = np.abs(r.astype(np.float64)) > np.abs(a)
    r = np.where(over, np.nextafter(r, np.float32(0)), r)
    return r.astype(np.float64)
def mma(c, prods, model):
    """c [...], prods [..., 16] -> new c"""
    if model == 'rn':
        return f32(c + prods.sum(-1))
    terms = np.concatenate([c[..., None], prods], -1)
    m = np.abs(terms).max(-1, keepdims=True)
    e = np.floor(np.log2(np.where(m > 0, m, 1.0)))
    q = np.ldexp(1.0, (e - 23).astype(int))  # ulp at 24 bits below the leading bit
    t = np.trunc(terms / q) * q
    return rz32(t.sum(-1))
def split(x):
    """fp16 hi/lo of x/16 (pos 0, 1) and x/256 (pos 2, 3), as the kernel (fp32 arithmetic)"""
    pos = np.arange(x.shape[-1]) % 4
    u = f32(x * np.where(pos < 2, 0.0625, 0.00390625))
    hi = f16(u)
    lo = f16(f32(u - hi))
    return hi, lo, pos
def run(N, K, G, zc, model, KS=8):
    q = rng.integers(0, 16, size=(N, K)).astype(np.float64)
    z = rng.integers(0, 16, size=(N, K // G)).astype(np.float64)
    d = f16(0.001 + 0.019 * rng.random((N, K // G)))
    x = (rng.integers(0, 1 << 24, size=K) / 8388608.0 - 1.0)
    x[x == 0] = 0.5
    w = (q - np.repeat(z, G, 1)) * np.repeat(d, G, 1)
    ref = (w * x).sum(1)
    mag = np.abs(w * x).sum(1)
    hi, lo, pos = split(x)
    GP = 128 // G
    S = (K + 127) // 128
    acc = np.zeros((KS, N, GP))  # per warp, per group column
    zr = np.repeat(z, G, 1); dr = np.repeat(d, G, 1)
    for s in range(S):
        wp = s % KS
        k0 = 128 * s
        for gi in range(GP):
            ks = np.arange(k0 + gi * G, min(k0 + (gi + 1) * G, K, k0 + 128))
            if len(ks) == 0: continue
            kk = ks - k0
            j_of = (kk % 32) // 4
            zz, dd = zr[:, ks], dr[:, ks]
            p = pos[ks]
            if zc == 2:
                A = np.where(p < 2, q[:, ks] - zz, 16 * (q[:, ks] - zz))
            else:
                A = np.where(p < 2, q[:, ks], 16 * q[:, ks]) * 2.0 ** -24
            Az = -np.where(p < 2, zz, 16 * zz) * 2.0 ** -24
            v = []
            for B in (hi[ks], lo[ks]):
                cc = np.zeros(N); ce = np.zeros(N)
                for j in range(8):
                    sel = j_of == j
                    if not sel.any(): continue
                    pr = np.zeros((N, 16)); pr[:, :sel.sum()] = A[:, sel] * B[sel]
                    if j & 1: ce = mma(ce, pr, model)
                    else: cc = mma(cc, pr, model)
                    if zc == 4:
                        pr = np.zeros((N, 16)); pr[:, :sel.sum()] = Az[:, sel] * B[sel]
                        if j & 1: ce = mma(ce, pr, model)
                        else: cc = mma(cc, pr, model)
                v.append((cc, ce))
            vv = f32(f32(v[0][0] + v[0][1]) + f32(v[1][0] + v[1][1]))
            dgrp = d[:, ks[0] // G]; zgrp = z[:, ks[0] // G]
            if zc == 3:
                # column sums: rows g (x/16 words) and g + 8 (x/256 words), 4 MMAs over q
                sc = []
                for B in (hi[ks], lo[ks]):
                    r0 = 0.0; r8 = 0.0
                    word_q = (kk % 32) // 8
                    for qq in range(4):
                        sel = word_q == qq
                        if not sel.any(): continue
                        b = B[sel] * 2.0 ** -24; pp = p[sel]
                        p0 = np.zeros(16); p0[:(pp < 2).sum()] = b[pp < 2]
                        p8 = np.zeros(16); p8[:(pp >= 2).sum()] = b[pp >= 2]
                        r0 = mma(np.array(r0), p0, model); r8 = mma(np.array(r8), p8, model)
                    sc.append(f32(16 * r8 + r0))  # fmaf: one rounding
                Sg = f32(sc[0] + sc[1])
                inner = f32(vv - zgrp * Sg)  # fmaf(-z, S, v)
                acc[wp, :, gi] = f32(acc[wp, :, gi] + dgrp * inner)
            else:
                acc[wp, :, gi] = f32(acc[wp, :, gi] + dgrp * vv)
    acc = acc * (16.0 if zc == 2 else 2.0 ** 28)
    y = np.zeros(N)
    for wpi in range(KS):
        for gi in range(GP):
            y = f32(y + acc[wpi, :, gi])
    return np.max(np.abs(y - ref) / mag)
shapes = [(8, 128), (37, 256), (576, 512), (100, 4096), (33, 1536), (64, 8192), (1, 96), (300, 160),
          (40, 576), (19, 4160), (17, 32), (130, 1088), (200, 4608), (72, 2560), (40, 512)]
model = sys.argv[2] if len(sys.argv) > 2 else 'trunc'
worst = {2: 0, 3: 0, 4: 0}
for N, K in shapes:
    for G in (32, 64, 128):
        if K % G: continue
        line = []
        for zc in (2, 3, 4):
            st = rng.bit_generator.state
            e = run(N, K, G, zc, model)
            rng.bit_generator.state = st  # same data for the three
            worst[zc] = max(worst[zc], e)
            line.append(f'ZC{zc} {e:.2e}')
        rng.random(1)
        print(f'N={N} K={K} G={G}: ' + ', '.join(line), flush=True)
print('worst', model, ', '.join(f'ZC{k} {v:.2e}' for k, v in worst.items()))
