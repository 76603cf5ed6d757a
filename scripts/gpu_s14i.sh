#!/bin/bash
# Session 14, last look: ncu source counters (as gpu_s14c.sh's src step) on the RS1 defaults
# (SAKER_W4_TQ_STORE=5 SAKER_W4_TQ_ADD=6: the workbench binary predates the new defaults): what
# qkv, o and down wait on once x travels in the ring; gate/up (ts) unchanged. Keeps a compact
# per-kernel summary (the 10 MB source export stays on the device).
# Here: dev_gemv_w4 of gpu_s14e.sh's build staged in .stage/s14i as s14i_bin.tgz.
. "$(dirname "$0")/device_lib.sh"
dev_init s14i "${1:-.stage/s14i}"
dev_unpack s14i_bin.tgz
STEP_PATTERN="FAIL\|RESULT"
SAKER_W4_TQ_STORE=5 SAKER_W4_TQ_ADD=6 step src 300 ncu --clock-control none --section WarpStateStats --section SpeedOfLight \
    --section SourceCounters -k 'regex:sk_w4_t[qs]_kernel' -o "$R/src" "$S/dev_gemv_w4" prof2
ncu -i "$R/src.ncu-rep" --page source --csv --print-source sass > "/tmp/src_sass.csv" 2>&1
ncu -i "$R/src.ncu-rep" --page details > "$R/src_details.txt" 2>&1
rm -f "$R/src.ncu-rep"
python3 - "$R/src_summary.txt" <<'PY'
import csv, sys
rows = list(csv.reader(open('/tmp/src_sass.csv')))
hi_ = [i for i, r in enumerate(rows) if r and r[0] == 'Address']
out = open(sys.argv[1], 'w')
seen = set()
for k, hi in enumerate(hi_):
    name = rows[hi - 1][1]
    if name in seen: continue
    seen.add(name)
    hdr = rows[hi]; end = hi_[k + 1] - 1 if k + 1 < len(hi_) else len(rows)
    body = [r for r in rows[hi + 1:end] if len(r) == len(hdr)]
    si = hdr.index('Warp Stall Sampling (All Samples)')
    sc = [i for i, h in enumerate(hdr) if h.startswith('stall_') and 'Not Issued' not in h]
    tot = sum(float(r[si] or 0) for r in body) or 1
    agg = {hdr[i]: sum(float(r[i] or 0) for r in body) for i in sc}
    out.write("== %s\n   samples %d\n   %s\n" % (name, tot, ", ".join("%s %.1f%%" % (h, 100 * v / tot) for h, v in sorted(agg.items(), key=lambda x: -x[1])[:8])))
    for r in sorted(body, key=lambda r: -float(r[si] or 0))[:10]:
        s = {hdr[i]: float(r[i] or 0) for i in sc}
        out.write("   %5.1f%%  %-58s %s\n" % (100 * float(r[si]) / tot, r[1][:58], ", ".join("%s %d" % (h, v) for h, v in sorted(s.items(), key=lambda x: -x[1])[:2])))
    out.write("\n")
PY
cat "$R/src_summary.txt"
grep -E "sk_w4_t|Duration|Warp Cycles Per Issued" "$R/src_details.txt" | head -24
pack
echo "done (+$(( $(date +%s) - T0 )) s)"
