#!/usr/bin/env python3
"""Runs `saker logits` on a model for the token ids of a reference file written by
scripts/make_fixtures.py (transformers), and compares. Fails if the normalised error
max|ours - ref| / max|ref| (over the compared entries) exceeds the tolerance, or if the argmax
of any row differs.

usage: compare_logits.py SAKER MODEL_PATH REFERENCE_JSON TOL [extra saker args...]
"""
import json
import os
import struct
import subprocess
import sys
import tempfile


def main():
    saker, model, ref_path, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    extra = sys.argv[5:]
    refs = json.load(open(ref_path))
    if isinstance(refs, dict):
        refs = [refs]
    worst = 0.0
    failed = False
    for k, ref in enumerate(refs):
        toks = ref["tokens"]
        V = ref["n_vocab"]
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "logits.f32")
            cmd = [saker, "logits", "-m", model, "--tokens", ",".join(map(str, toks)), "-o", out] + extra
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print("FAIL: saker logits exited", r.returncode, r.stderr)
                return 1
            data = open(out, "rb").read()
        if len(data) != 4 * V * len(toks):
            print(f"FAIL: {len(data)} bytes of logits, expected {4 * V * len(toks)}")
            return 1
        ours = struct.unpack(f"<{V * len(toks)}f", data)
        maxd = maxr = 0.0
        for t in range(len(toks)):
            row = ours[t * V:(t + 1) * V]
            if "logits" in ref:
                pairs = list(enumerate(ref["logits"][t]))
            else:
                pairs = ref["rows"][t]
            for c, v in pairs:
                maxd = max(maxd, abs(row[c] - v))
                maxr = max(maxr, abs(v))
            ref_arg = ref["argmax"][t] if "argmax" in ref else max(pairs, key=lambda p: p[1])[0]
            our_arg = max(range(V), key=lambda c: row[c])
            if our_arg != ref_arg and abs(row[our_arg] - row[ref_arg]) > tol * maxr:
                print(f"FAIL: sequence {k} row {t}: argmax {our_arg} but reference {ref_arg}")
                failed = True
        err = maxd / max(maxr, 1e-30)
        worst = max(worst, err)
        print(f"{os.path.basename(os.path.dirname(ref_path)) or ref_path} seq {k}: {len(toks)} tokens, "
              f"max abs diff {maxd:.3g}, max |ref| {maxr:.3g}, normalised error {err:.3g} (tolerance {tol:g})")
    if worst > tol or failed:
        print("FAIL")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
