#!/usr/bin/env python3
"""The decode kernels' in-graph timeline from a SAKER_TRACE build's ring (pdl.cuh, backend.cu).

Usage: trace_timeline.py TRACE_FILE [--layers N] [--csv FILE]

The file: a counter word, three words of padding, then records of four little-endian uint64
words: tag << 32 | smid << 24 | block, t0 (block start), t_wait (griddepcontrol.wait returned;
0 when the kernel has none), t_end, in %globaltimer ns. Records of one tag are grouped into
launches where their starts are more than GAP_NS apart. Each launch is then compared with the
launch before it (in order of first block start):

  incr   its last block's end minus the previous launch's last block's end: what it adds to the
         step on the critical path (the untraced kernels between the two included);
  wlat   its first wait return minus the previous launch's last end (the dependency's latency);
  run    its last end minus its median wait return (its own time once the data is there);
  tail   its last end minus its median end (the spread of its blocks' ends);
  early  the previous launch's last end minus its first block start (how long its blocks sat
         resident before the dependency resolved);
  starts spread / ends spread  its last block start minus its first; its last end minus its
         first.

Prints the medians of these per kernel over every complete launch in the ring, then the
timeline of N layers (default 2) from the middle of the ring; --csv writes those launches'
blocks (kernel, block, SM, start, wait, end; us from the window's start) to FILE.
"""
import statistics
import struct
import sys

GAP_NS = 20000
KINDS = {1: "tq.store", 2: "tq.add", 3: "ts", 4: "decode", 5: "combine", 7: "rope"}
PH = 6  # a phase record (pdl.cuh SK_TRACE_END_PH): marks 2, 3, 4 of the record before it
PH2 = 8  # (session 29, attn_decode.cuh sk_ad_trace_end_push) the push merge's marks 5, 6, 7
PH3 = 9  # (session 29) clock64 at marks 3 and 4


def name(tag):
    kind, c = tag >> 24, tag & 0xFFFFFF
    return KINDS.get(kind, "k%d" % kind) + ("(K=%d)" % (32 * c) if c else "")


def load(path):
    data = open(path, "rb").read()
    n = (len(data) // 8 - 4) // 4
    cnt = struct.unpack_from("<Q", data, 0)[0]
    recs = []
    prev = None  # the last block record, while phase records follow it
    for i in range(min(n, cnt)):
        w0, t0, tw, t1 = struct.unpack_from("<4Q", data, 32 + 32 * i)
        kind = w0 >> 56
        if kind in (PH, PH2, PH3):  # the phases of the block just before it in the ring
            if prev is not None and prev[2] == (w0 & 0xFFFFFF):
                prev[{PH: 6, PH2: 7, PH3: 8}[kind]] = (t0, tw, t1)
            else:
                prev = None
            continue
        prev = None
        if t0 == 0 or t1 == 0:
            continue
        prev = [w0 >> 32, (w0 >> 24) & 0xFF, w0 & 0xFFFFFF, t0, tw, t1, None, None, None]
        recs.append(prev)
    return cnt, recs


def launches(recs):
    by_tag = {}
    for r in recs:
        by_tag.setdefault(r[0], []).append(r)
    out = []
    for tag, rs in by_tag.items():
        rs.sort(key=lambda r: r[3])
        cur = [rs[0]]
        for r in rs[1:]:
            if r[3] - cur[-1][3] > GAP_NS:
                out.append((tag, cur))
                cur = []
            cur.append(r)
        out.append((tag, cur))
    res = []
    for tag, rs in out:
        t0 = [r[3] for r in rs]
        tw = [r[4] for r in rs if r[4]]
        t1 = [r[5] for r in rs]
        res.append({
            "recs": rs, "tag": tag, "n": len(rs), "s0": min(t0), "smed": statistics.median(t0),
            "w0": min(tw) if tw else 0, "wmed": statistics.median(tw) if tw else 0,
            "emed": statistics.median(t1), "elast": max(t1), "slast": max(t0), "emin": min(t1),
        })
    res.sort(key=lambda L: L["s0"])
    return res


def main():
    path = sys.argv[1]
    nl = int(sys.argv[sys.argv.index("--layers") + 1]) if "--layers" in sys.argv else 2
    cnt, recs = load(path)
    L = launches(recs)
    print("records: %d written, %d read; launches: %d" % (cnt, len(recs), len(L)))
    # the block counts of each tag: a launch with fewer blocks than its tag's most common count is
    # cut by the ring's wrap (dropped)
    full = {}
    for x in L:
        full.setdefault(x["tag"], []).append(x["n"])
    mode = {t: max(set(v), key=v.count) for t, v in full.items()}
    rows = {}
    for a, b in zip(L, L[1:]):
        if a["n"] != mode[a["tag"]] or b["n"] != mode[b["tag"]] or not b["w0"]:
            continue
        d = rows.setdefault((a["tag"], b["tag"]), {k: [] for k in ("incr", "wlat", "run", "tail", "early", "sspr", "espr")})
        d["incr"].append(b["elast"] - a["elast"])
        d["wlat"].append(b["w0"] - a["elast"])
        d["run"].append(b["elast"] - b["wmed"])
        d["tail"].append(b["elast"] - b["emed"])
        d["early"].append(a["elast"] - b["s0"])
        d["sspr"].append(b["slast"] - b["s0"])
        d["espr"].append(b["elast"] - b["emin"])
    print("\n| previous -> kernel | launches | blocks | incr us | wlat us | run us | tail us | early us | starts spread us | ends spread us |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    tot = 0.0
    for (ta, tb), d in sorted(rows.items(), key=lambda kv: -len(kv[1]["incr"])):
        med = {k: statistics.median(v) / 1000.0 for k, v in d.items()}
        tot += med["incr"] * len(d["incr"])
        print("| %s -> %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            name(ta), name(tb), len(d["incr"]), mode[tb], med["incr"], med["wlat"], med["run"],
            med["tail"], med["early"], med["sspr"], med["espr"]))
    # the phases of the kernels that record them (SK_TRACE_END_PH): per launch the median block's
    # wait -> mark 2 -> mark 3 -> mark 4 -> end (us), then the median over launches
    ph = {}
    for x in L:
        if x["n"] != mode[x["tag"]]:
            continue
        rs = [r for r in x["recs"] if r[6]]
        if not rs:
            continue
        def seg(r):
            m2, m3, m4 = r[6]
            st = r[4] or r[3]
            out = [m2 - st if m2 else 0, m3 - m2 if m3 and m2 else 0,
                   m4 - m3 if m4 and m3 else 0, r[5] - (m4 or m3 or m2 or st)]
            return out
        segs = [seg(r) for r in rs]
        d = ph.setdefault(x["tag"], {k: [] for k in range(8)})
        for k in range(4):
            d[k].append(statistics.median(sg[k] for sg in segs))
        d[4].append(statistics.median((r[4] - r[3]) if r[4] else 0 for r in rs))
        # mark 3 (loop done) by block index mod 8 (the split at batch 1's clusters of 8), against
        # the launch's median
        m3 = [r[6][1] for r in rs if r[6][1]]
        if m3:
            med3 = statistics.median(m3)
            bysp = d.setdefault("bysplit", {})
            for r in rs:
                if r[6][1]:
                    bysp.setdefault(r[2] % 8, []).append(r[6][1] - med3)
        # the push merge's finer phases (marks 3 -> 5 -> 6 -> 7 -> 4) and the SM clock across
        # marks 3 -> 4 (cycles / ns), where recorded
        fine = [r for r in rs if r[7] and r[8] and r[6][1] and r[6][2]]
        if fine:
            fs = [[r[7][0] - r[6][1], r[7][1] - r[7][0], r[7][2] - r[7][1], r[6][2] - r[7][2],
                   r[8][1] - r[8][0], (r[8][1] - r[8][0]) / max(1, r[6][2] - r[6][1])] for r in fine]
            fd = d.setdefault("fine", [[] for _ in range(6)])
            for k in range(6):
                fd[k].append(statistics.median(f[k] for f in fs))
        # how far apart the launch's blocks reach marks 3 and 4 and their wait (last - median)
        for k, f in ((5, lambda r: r[6][1]), (6, lambda r: r[6][2]), (7, lambda r: r[4])):
            v = [f(r) for r in rs if f(r)]
            d[k].append(max(v) - statistics.median(v) if v else 0)
    if ph:
        print("\nphases (median block, median launch; us): start -> wait | wait -> mark 2 | 2 -> 3 | 3 -> 4 | 4 -> end (decode: mark 2 q loaded, 3 chunk loop done, 4 warp merge done; the end includes the trace record)")
        for tag, d in ph.items():
            print("| %s | %d launches | %s |" % (name(tag), len(d[0]), " | ".join(
                "%.2f" % (statistics.median(v) / 1000.0) for v in [d[4], d[0], d[1], d[2], d[3]])))
            print("  last block - median block (us): wait %.2f, mark 3 %.2f, mark 4 %.2f" % tuple(
                statistics.median(v) / 1000.0 for v in (d[7], d[5], d[6])))
            if "fine" in d:
                fd = d["fine"]
                print("  push merge (median block, median launch): 3 -> 5 arithmetic %.2f us | 5 -> 6 first barrier's wait %.2f | "
                      "6 -> 7 pushes issued %.2f | 7 -> 4 barrier %.2f | marks 3 -> 4: %.0f cycles, %.2f cycles/ns" % (
                          statistics.median(fd[0]) / 1000.0, statistics.median(fd[1]) / 1000.0,
                          statistics.median(fd[2]) / 1000.0, statistics.median(fd[3]) / 1000.0,
                          statistics.median(fd[4]), statistics.median(fd[5])))
            if "bysplit" in d:
                print("  mark 3 - launch median by block % 8 (us, median / p90): " + ", ".join(
                    "%d: %.2f / %.2f" % (k, statistics.median(v) / 1000.0,
                                         sorted(v)[int(0.9 * (len(v) - 1))] / 1000.0)
                    for k, v in sorted(d["bysplit"].items())))
    # timeline of nl layers from the middle
    mid = len(L) // 2
    while mid < len(L) and KINDS.get(L[mid]["tag"] >> 24) != "tq.store":
        mid += 1
    if mid < len(L):
        base = L[mid]["s0"]
        print("\ntimeline (us from the first block start of a qkv launch mid-ring):")
        print("| kernel | blocks | first start | median start | first wait | median wait | median end | last end |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        seen = 0
        csv = open(sys.argv[sys.argv.index("--csv") + 1], "w") if "--csv" in sys.argv else None
        if csv:
            csv.write("kernel,block,sm,start_us,wait_us,end_us\n")
        for x in L[mid:]:
            if KINDS.get(x["tag"] >> 24) == "tq.store":
                seen += 1
                if seen > nl:
                    break
            for r in x["recs"] if csv else []:
                csv.write("%s,%d,%d,%.3f,%.3f,%.3f\n" % (name(x["tag"]), r[2], r[1], (r[3] - base) / 1e3,
                                                       (r[4] - base) / 1e3 if r[4] else -1, (r[5] - base) / 1e3))
            f = lambda v: "%.2f" % ((v - base) / 1000.0) if v else "-"
            print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
                name(x["tag"]), x["n"], f(x["s0"]), f(x["smed"]), f(x["w0"]), f(x["wmed"]),
                f(x["emed"]), f(x["elast"])))


if __name__ == "__main__":
    main()
