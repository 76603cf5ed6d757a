#!/usr/bin/env python3
"""Independent check of a PNG written by saker (sk_png_write): parses the chunks, checks every
CRC, the IHDR fields (8-bit RGB, no interlace) and the chunk order, inflates IDAT with zlib (which
checks the Adler-32), undoes the row filters, then checks what the options ask for. Exit 0 when
every check passes, 1 otherwise, each failure on one line.

  png_check.py FILE [--size WxH] [--pixels RAW.rgb] [--corners-white]
               [--nonwhite X0,Y0,X1,Y1,MIN] [--colors X0,Y0,X1,Y1,MIN,RRGGBB[,RRGGBB...]]

--pixels: the image must equal RAW (H rows of 3W bytes). --nonwhite: at least MIN non-white
pixels in the rectangle (inclusive). --colors: each colour on at least MIN pixels in the
rectangle. Both options may repeat."""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("bad signature")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"truncated chunk at byte {pos}")
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        typ, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            raise ValueError(f"chunk {typ!r} runs past the end")
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(typ + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"chunk {typ!r} at byte {pos}: CRC mismatch")
        chunks.append((typ, body))
        pos += 12 + n
    types = [t for t, _ in chunks]
    if not types or types[0] != b"IHDR" or types[-1] != b"IEND" or types.count(b"IEND") != 1:
        raise ValueError(f"chunk order {types}: want IHDR first, IEND last")
    if len(chunks[0][1]) != 13:
        raise ValueError("IHDR is not 13 bytes")
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth, ctype, comp, filt, interlace) != (8, 2, 0, 0, 0):
        raise ValueError(f"IHDR depth {depth} colour type {ctype} compression {comp} "
                         f"filter {filt} interlace {interlace}: want 8 2 0 0 0")
    idat = [i for i, t in enumerate(types) if t == b"IDAT"]
    if not idat or idat != list(range(idat[0], idat[-1] + 1)):
        raise ValueError("IDAT chunks missing or not consecutive")
    d = zlib.decompressobj()
    raw = d.decompress(b"".join(chunks[i][1] for i in idat))
    if not d.eof or d.unused_data:
        raise ValueError("zlib stream incomplete or followed by extra bytes")
    stride = 3 * w
    if len(raw) != h * (stride + 1):
        raise ValueError(f"{len(raw)} bytes of scanlines, want {h * (stride + 1)}")
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            else:
                raise ValueError(f"row {y}: filter type {f}")
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return w, h, bytes(out)


def main(argv):
    path, args = argv[1], argv[2:]
    try:
        w, h, px = decode(path)
    except (OSError, ValueError, zlib.error) as e:
        print(f"FAIL {path}: {e}")
        return 1
    fails = 0

    def fail(msg):
        nonlocal fails
        fails += 1
        print(f"FAIL {path}: {msg}")

    def at(x, y):
        i = 3 * (y * w + x)
        return px[i:i + 3]

    def rect(spec):
        x0, y0, x1, y1 = (int(v) for v in spec[:4])
        return [at(x, y) for y in range(max(y0, 0), min(y1, h - 1) + 1)
                for x in range(max(x0, 0), min(x1, w - 1) + 1)]

    i = 0
    while i < len(args):
        opt, val = args[i], args[i + 1] if i + 1 < len(args) else None
        i += 1 if opt == "--corners-white" else 2
        if opt == "--size":
            if f"{w}x{h}" != val:
                fail(f"size {w}x{h}, want {val}")
        elif opt == "--pixels":
            want = open(val, "rb").read()
            if want != px:
                diff = next((k for k in range(min(len(want), len(px))) if want[k] != px[k]), None)
                fail(f"pixels differ from {val} (first at byte {diff}, sizes {len(px)} / {len(want)})")
        elif opt == "--corners-white":
            for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
                if at(x, y) != b"\xff\xff\xff":
                    fail(f"corner ({x}, {y}) is {at(x, y).hex()}, not white")
        elif opt == "--nonwhite":
            spec = val.split(",")
            n = sum(p != b"\xff\xff\xff" for p in rect(spec))
            if n < int(spec[4]):
                fail(f"{n} non-white pixels in {spec[:4]}, want at least {spec[4]}")
        elif opt == "--colors":
            spec = val.split(",")
            pix = rect(spec)
            for col in spec[5:]:
                n = pix.count(bytes.fromhex(col))
                if n < int(spec[4]):
                    fail(f"colour {col} on {n} pixels in {spec[:4]}, want at least {spec[4]}")
        else:
            fail(f"unknown option {opt}")
    if not fails:
        print(f"ok {path}: {w}x{h}, {len(args)} check arguments passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
