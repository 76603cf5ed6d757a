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
import os
import re
import sys
from collections import defaultdict

import numpy as np

N_SM = 132
BIG_T = 512  # sk_w4m_costs_big from this many rows on (SK_W4M_BIG_T)
SHAPES = {  # name in the bn log: (output rows, K, swiglu)
    "qkv": (10240, 8192, 0), "o": (8192, 8192, 0), "gate/up swiglu": (28672, 8192, 1),
    "down": (8192, 28672, 0), "7B qkv": (12288, 4096, 0), "7B o": (4096, 4096, 0),
    "7B gate/up swiglu": (11008, 4096, 1), "7B down": (4096, 11008, 0)}
# the backend's candidates (wc192x64 and wr192x144 were never the best)
CANDIDATES = ["wn64x64", "wn64x80", "wn64x96", "wn64x128", "wt128x64", "wt128x80", "wt128x96",
              "wt128x128", "wt128x144", "wt128x160", "wt128x192", "wc192x96", "wc192x128",
              "wr192x128", "wr192x160", "wr128x256", "wr128x192"]


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


def split_of(c, shape, T, s_force=0):
    """The split the launcher runs (features' rule and clamps)."""
    return features(c, shape, T, s_force, want_split=True)


def features(c, shape, T, s_force=0, want_split=False):
    n_out, K, swiglu = SHAPES[shape]
    bm, bn, occ = cfg_dims(c)
    rt = bm // 2 if swiglu else bm
    tiles = -(-n_out // rt) * -(-T // bn)
    nkb = K // 128
    if s_force:
        s = s_force
        while s > 1 and (tiles > 8192 or tiles * s * bm * bn > 16 << 20):  # scratch limits
            s -= 1
    elif T > 64:
        s = wide_splits(tiles, occ * N_SM, nkb)
    else:
        s = 1 if tiles > N_SM else makespan_splits(tiles, occ * N_SM, nkb)
    s = max(1, min(s, nkb))
    if want_split:
        return s
    per, kb, split = math.ceil(tiles * s / N_SM), nkb / s, 1.0 if s > 1 else 0.0
    if occ == 2:
        return [per // 2 * kb, per // 2, per % 2 * kb, per % 2, split]
    return [per * kb, per, split]


def main():
    logs = sys.argv[1:] or ["bench/results/data/w4_bn_s9_70b.log",
                            "bench/results/data/w4_bn_s9_7b.log",
                            "bench/results/data/w4_bn_s10_70b.log",
                            "bench/results/data/w4_bn_s10_7b.log",
                            "bench/results/data/w4_bn_s10b_70b.log",
                            "bench/results/data/w4_bn_s10b_7b.log",
                            "bench/results/data/w4_bn_s11_70b.log",
                            "bench/results/data/w4_bn_s11_7b.log"]
    logs = [f for f in logs if os.path.exists(f)]
    # logs from before the split reduction was vectorized (session 10): their split launches
    # are not today's, so only their unsplit timings are fitted
    slow = {f for f in logs if re.search(r"w4_bn_s9_|w4_bn_s10_(70b|7b)", f)}
    # (shape, T, cfg, split, us): split 0 = the launcher's rule; the session-10 logs (bn without
    # GW4_BN_AUTO) add forced splits, named by their header: "auto | s1 | s2 | s4 | stream-K"
    # (before the split reduction was vectorized: only s1 is used from those) or "auto | s1 |
    # s2 | s3 | s4" (after: all of them)
    data = []
    for f in logs:
        cols = []
        for line in open(f):
            if line.startswith("| shape | T | cfg |"):
                cols = [c.strip() for c in line.strip().strip("|").split("|")][3:]
                if "stream-K" in cols:  # the slow split reduction: its s2 / s4 are not today's
                    cols = [c if c in ("auto us", "s1") else "-" for c in cols]
                continue
            m = re.match(r"\| (.+?) \| (\d+) \| (w[tncr]\d+x\d+)\*?\d? \|((?: [\d.]+ \|)+)", line)
            if not (m and m.group(1) in SHAPES):
                continue
            vals = [float(v) for v in m.group(4).replace("|", " ").split()]
            for c, v in zip(cols or ["auto us"], vals):
                sp = 0 if c == "auto us" else int(c[1]) if re.fullmatch(r"s\d", c) else -1
                if sp < 0 or (f in slow and split_of(m.group(3), m.group(1), int(m.group(2)), sp) > 1):
                    continue
                data.append((m.group(1), int(m.group(2)), m.group(3), sp, v))
    def fit(points):
        out = {}
        for c in sorted({d[2] for d in points}):
            rows = [(features(c, sh, T, sp), us) for sh, T, cc, sp, us in points if cc == c]
            # at least 8 points over 2 row counts (a set fitted at one row count, as the wn
            # tiles' at 512, says nothing about larger ones: those keep the one-set costs)
            if len(rows) < 8 or len({T for sh, T, cc, sp, us in points if cc == c}) < 2:
                continue
            A = np.array([r[0] for r in rows])
            y = np.array([r[1] for r in rows])
            out[c], *_ = np.linalg.lstsq(A / y[:, None], np.ones_like(y), rcond=None)
        return out

    # session 11: a second set fitted on BIG_T rows and more only (sk_w4m_costs_big), used from
    # BIG_T rows on: one set over 33-2,048 rows missed by 8-10% at 1,146 (down, qkv)
    params = fit(data)
    params_big = fit([d for d in data if d[1] >= BIG_T])

    def pred(c, sh, T, sp=0, big=True):
        p = params_big[c] if big and T >= BIG_T and c in params_big else params[c]
        return float(np.dot(features(c, sh, T, sp), p))

    for title, ps in (("sk_w4m_costs", params), (f"sk_w4m_costs_big, {BIG_T} rows and more",
                                                 params_big)):
        print(f"C table ({title}: cfg, bm, bn, occ, a, b, e, a1, b1):")
        for c in CANDIDATES:
            if c not in ps:
                continue
            bm, bn, occ = cfg_dims(c)
            p = ps[c]
            if occ == 2:
                a, b, a1, b1, e = p
            else:
                (a, b, e), a1, b1 = p, 0.0, 0.0
            name = f"{c[:2].upper()}{bn}" if bm != 128 or c[:2] != "wr" else f"WR128x{bn}"
            print(f"    {{SK_W4M_{name}, {bm}, {bn}, {occ}, {a:.4f}f, {b:.3f}f, {e:.2f}f,"
                  f" {a1:.4f}f, {b1:.3f}f}}, /* {c} */")
    # the pick over (configuration, split in {launcher's, 1}) as sk_w4m_pick_model, per log (a
    # log's timings are one call's; the same point in two calls is not compared)
    by = defaultdict(dict)
    for sh, T, c, sp, us in data:
        by[(sh, T)][(c, sp)] = us
    for big in (False, True):
        losses, losses_big = [], []
        for key, times in sorted(by.items()):
            cands = [cs for cs in times if cs[0] in CANDIDATES]
            pick = min(cands, key=lambda cs: pred(cs[0], key[0], key[1], cs[1], big))
            best = min(cands, key=times.get)
            loss = times[pick] / times[best] - 1
            losses.append(loss)
            if key[1] >= BIG_T:
                losses_big.append(loss)
            if big and loss > 0.04:
                print(f"miss: {key[0]} {key[1]} rows: model {pick} {times[pick]:.1f} us, "
                      f"best {best} {times[best]:.1f} (+{100 * loss:.0f}%)")
        print(f"pick against the measured best, {'two sets' if big else 'one set'}: mean "
              f"+{100 * np.mean(losses):.1f}%, worst +{100 * max(losses):.0f}%; at {BIG_T} rows "
              f"and more: mean +{100 * np.mean(losses_big):.1f}%, worst "
              f"+{100 * max(losses_big):.0f}%")
    # the big set's generalisation: fitted on one model's shapes, judged on the other's
    for train, test in (("70B", "7B"), ("7B", "70B")):
        is7 = lambda sh: sh.startswith("7B")
        tr = [d for d in data if d[1] >= BIG_T and is7(d[0]) == (train == "7B")]
        pb = fit(tr)
        ls = []
        for key, times in sorted(by.items()):
            if key[1] < BIG_T or is7(key[0]) != (test == "7B"):
                continue
            cands = [cs for cs in times if cs[0] in CANDIDATES and cs[0] in pb]
            pick = min(cands, key=lambda cs: float(np.dot(features(cs[0], key[0], key[1], cs[1]),
                                                          pb[cs[0]])))
            best = min(cands, key=times.get)
            ls.append(times[pick] / times[best] - 1)
        print(f"big set fitted on {train}, picks on {test} at {BIG_T}+ rows: mean "
              f"+{100 * np.mean(ls):.1f}%, worst +{100 * max(ls):.0f}%")


if __name__ == "__main__":
    main()
