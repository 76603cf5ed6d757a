#!/usr/bin/env bash
# saker bench --plot: a PNG chart of output tok/s against output length, one line per input length,
# checked by tests/png_check.py (chunk CRCs, zlib, size, series colours in the plot area). The
# plot area of the default 900 x 600 chart is x 122..710, y 56..532 (src/core/chart.c).
set -u
S="$SK_DATA/stories260K/stories260K.gguf"
CHECK="$(dirname "$0")/../png_check.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
AREA=123,56,710,531
BLUE=1f77b4 ORANGE=ff7f0e GREEN=2ca02c

"$SK_SAKER" bench -m "$S" --device cpu --isl 8,16 --osl 4,8,12 --batch 2 --plot "$T/a.png" \
  >"$T/a.md" 2>"$T/a.err" || { echo "FAIL: bench --plot exited $?: $(tail -2 "$T/a.err")"; fail=1; }
grep -q "chart written to $T/a.png" "$T/a.err" || { echo "FAIL: no 'chart written' line"; fail=1; }
[ "$(grep -c '^| [0-9]' "$T/a.md")" = 6 ] || { echo "FAIL: want 6 table rows"; cat "$T/a.md"; fail=1; }
python3 "$CHECK" "$T/a.png" --size 900x600 --corners-white --nonwhite $AREA,1000 \
  --colors $AREA,40,$BLUE,$ORANGE || fail=1
# Two input lengths: no third series colour anywhere.
python3 "$CHECK" "$T/a.png" --colors 0,0,899,599,1,$GREEN >/dev/null && { echo "FAIL: a third series drawn"; fail=1; }

# One output length: each series is a single marker.
"$SK_SAKER" bench -m "$S" --device cpu --isl 8,16,24 --osl 6 --batch 2 --plot "$T/b.png" >/dev/null 2>"$T/b.err" \
  || { echo "FAIL: bench --plot (one osl) exited $?: $(tail -2 "$T/b.err")"; fail=1; }
# The markers' places depend on measured speeds (they may overlap): some marker pixels in the plot
# area, and each series colour somewhere (its legend swatch at least).
python3 "$CHECK" "$T/b.png" --size 900x600 --nonwhite $AREA,20 \
  --colors 0,0,899,599,20,$BLUE,$ORANGE,$GREEN || fail=1

# An unwritable path fails at once (exit 1, the path named), before any run.
err=$("$SK_SAKER" bench -m "$S" --device cpu --osl 4 --plot /nonexistent-dir-sk/c.png 2>&1 >/dev/null); rc=$?
if [ $rc -ne 1 ] || ! grep -q "/nonexistent-dir-sk/c.png" <<<"$err" || grep -q "bench isl" <<<"$err"; then
  echo "FAIL: unwritable --plot: exit $rc: $err"; fail=1
else echo "ok: unwritable --plot -> exit 1 before running"; fi
"$SK_SAKER" bench --plot 2>/dev/null; [ $? -eq 2 ] || { echo "FAIL: --plot without a value is not a usage error"; fail=1; }
[ $fail = 0 ] && echo "ok: bench --plot"
exit $fail
