#!/usr/bin/env python3
"""Fits sk_w4m_pick_model's coefficients (src/backend/cuda/w4_mma.cuh, session 9) to dev_gemm_w4 bn
timings and prints the C table and how close the model's picks come to the measured best.

Usage: python3 dev/notes/w4_cost_model.py [bn logs...]
  (default: bench/results/data/w4_bn_s9_70b.log and w4_bn_s9_7b.log, the H200 runs of
   scripts/gpu_s9_bn.sh: GW4_BN_AUTO=1 dev_gemm_w4 bn, backend modes, 33..1024 rows)

Model, per configuration (BM weight rows, BN tokens, occ blocks an SM): the launcher's split s
(sk_w4ws_run: sk_w4g_splits above 64 rows, else 1 when the tiles exceed the SMs, else the
makespan rule sk_w4m_splits), per_sm = ceil(tiles * s / n_sm) blocks on the busiest SM,
kb = K / 128 / s K blocks each; us = per_sm * (a kb + b) + (s > 1) e; for occ = 2 (the wn
tiles) per_sm // 2 pairs at (a kb + b) and per_sm % 2 lone blocks at (a1 kb + b1). Fitted by
least squares on the relative error. Needs numpy."""
import math
import re
import sys
from collections import defaultdict

import numpy as np

N_SM = 132
SHAPES = {  # name in the bn log: (output rows, K, swiglu)
    "qkv": (10240, 8192, 0), "o": (8192, 8192, 0), "gate/up swiglu": (28672, 8192, 1),
    "down": (8192, 28672, 0), "7B qkv": (12288, 4096, 0), "7B o": (4096, 4096, 0),
    "7B gate/up swiglu": (11008, 4096, 1), "7B down": (4096, 11008, 0)}
# the backend's candidates (wc192x64 and wr192x144 were never the best)
CANDIDATES = ["wn64x64", "wn64x80", "wn64x96", "wn64x128", "wt128x64", "wt128x80", "wt128x96",
              "wt128x128", "wt128x144", "wt128x160", "wt128x192", "wc192x96", "wc192x128",
              "wr192x128", "wr192x160"]


def cfg_dims(c):
    kind, bm, bn = re.match(r"(wt|wn|wc|wr)(\d+)x(\d+)", c).groups()
    return int(bm), int(bn), 2 if kind == "wn" else 1


def makespan_splits(tiles, cap, nkb):
    best, bc = 1, 1e30
    for s in range(1, max(min(nkb // 4, 16), 1) + 1):
        c = math.ceil(tiles * s / cap) / s * (1 + 0.02 * (s - 1))
        if c < bc - 1e-9:
            bc, best = c, s
    return best


def wide_splits(tiles, cap, nkb):
    if tiles <= 0 or 2 * tiles > N_SM:
        return 1
    return max(min(cap // tiles, nkb // 4, 16), 1)


def features(c, shape, T, s_force=0):
    n_out, K, swiglu = SHAPES[shape]
    bm, bn, occ = cfg_dims(c)
    rt = bm // 2 if swiglu else bm
    tiles = -(-n_out // rt) * -(-T // bn)
    nkb = K // 128
    if s_force:
        s = s_force
    elif T > 64:
        s = wide_splits(tiles, occ * N_SM, nkb)
    else:
        s = 1 if tiles > N_SM else makespan_splits(tiles, occ * N_SM, nkb)
    s = max(1, min(s, nkb))
    per, kb, split = math.ceil(tiles * s / N_SM), nkb / s, 1.0 if s > 1 else 0.0
    if occ == 2:
        return [per // 2 * kb, per // 2, per % 2 * kb, per % 2, split]
    return [per * kb, per, split]


def main():
    logs = sys.argv[1:] or ["bench/results/data/w4_bn_s9_70b.log",
                            "bench/results/data/w4_bn_s9_7b.log",
                            "bench/results/data/w4_bn_s10_70b.log",
                            "bench/results/data/w4_bn_s10_7b.log"]
    # (shape, T, cfg, split, us): split 0 = the launcher's rule; the session-10 logs (bn without
    # GW4_BN_AUTO: auto | s1 | s2 | s4 | stream-K) add the unsplit time (s1) of every tile
    data = []
    for f in logs:
        for line in open(f):
            m = re.match(r"\| (.+?) \| (\d+) \| (w[tncr]\d+x\d+)\*?1? \| ([\d.]+) \|"
                         r"(?: ([\d.]+) \|)?", line)
            if m and m.group(1) in SHAPES:
                data.append((m.group(1), int(m.group(2)), m.group(3), 0, float(m.group(4))))
                if m.group(5):
                    data.append((m.group(1), int(m.group(2)), m.group(3), 1, float(m.group(5))))
    params = {}
    for c in sorted({d[2] for d in data}):
        rows = [(features(c, sh, T, sp), us) for sh, T, cc, sp, us in data if cc == c]
        A = np.array([r[0] for r in rows])
        y = np.array([r[1] for r in rows])
        params[c], *_ = np.linalg.lstsq(A / y[:, None], np.ones_like(y), rcond=None)

    def pred(c, sh, T, sp=0):
        return float(np.dot(features(c, sh, T, sp), params[c]))

    print("C table (sk_w4m_costs: cfg, bm, bn, occ, a, b, e, a1, b1):")
    for c in CANDIDATES:
        bm, bn, occ = cfg_dims(c)
        p = params[c]
        if occ == 2:
            a, b, a1, b1, e = p
        else:
            (a, b, e), a1, b1 = p, 0.0, 0.0
        print(f"    {{SK_W4M_{c[:2].upper()}{bn}, {bm}, {bn}, {occ}, {a:.4f}f, {b:.3f}f, {e:.2f}f,"
              f" {a1:.4f}f, {b1:.3f}f}}, /* {c} */")
    # the pick over (configuration, split in {launcher's, 1}) as sk_w4m_pick_model, per log (a
    # log's timings are one call's; the same point in two calls is not compared)
    by = defaultdict(dict)
    for sh, T, c, sp, us in data:
        by[(sh, T)][(c, sp)] = us
    losses = []
    for key, times in sorted(by.items()):
        cands = [cs for cs in times if cs[0] in CANDIDATES]
        if not any(sp == 1 for _, sp in cands):  # session-9 points: the launcher's split only
            cands = [cs for cs in cands if cs[1] == 0]
        pick = min(cands, key=lambda cs: pred(cs[0], key[0], key[1], cs[1]))
        best = min(cands, key=times.get)
        loss = times[pick] / times[best] - 1
        losses.append(loss)
        if loss > 0.04:
            print(f"miss: {key[0]} {key[1]} rows: model {pick} {times[pick]:.1f} us, "
                  f"best {best} {times[best]:.1f} (+{100 * loss:.0f}%)")
    print(f"pick against the measured best: mean +{100 * np.mean(losses):.1f}%, "
          f"worst +{100 * max(losses):.0f}%")


if __name__ == "__main__":
    main()
