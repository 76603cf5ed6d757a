#!/usr/bin/env python3
"""Compares two [rows x V] float32 logits files (saker logits -o): per row the argmax, and the
normalised error max|a - b| / max|b| over all rows. usage: cmp_logits2.py A B V"""
import struct
import sys

a, b, V = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3])
n = len(b) // 4
if len(a) != len(b) or n % V:
    print(f"FAIL: sizes {len(a)} / {len(b)}")
    sys.exit(1)
x, y = struct.unpack(f"<{n}f", a), struct.unpack(f"<{n}f", b)
rows = n // V
maxd = max(abs(p - q) for p, q in zip(x, y))
maxr = max(abs(q) for q in y)
same = sum(1 for r in range(rows)
           if max(range(V), key=lambda c: x[r * V + c]) == max(range(V), key=lambda c: y[r * V + c]))
print(f"{rows} rows: argmax equal in {same}, normalised error {maxd / max(maxr, 1e-30):.3g}")
