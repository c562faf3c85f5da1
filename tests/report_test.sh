#!/usr/bin/env bash
# report_test.sh KNOTMAT: knotmat report as a clinician would use it, checked
# in the rendered output: PNG size, the pressure maps not blank, every event
# marker where `knotmat analyze` (a separate run) says the event is and no
# marker where there is none (Debian python3-pil reads the PNG); a long session's PDF has its detail pages;
# .kmr metadata shown and removed by --deidentify; imports work; errors.
set -u
KM=$1 DATA=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export KNOTMAT_NO_PROGRESS=1
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

"$KM" simulate -s release -d 120 --seed 7 -o "$T/s.csv" >/dev/null
check "report png" "$KM" report "$T/s.csv" -o "$T/r.png" --map "$T/map.json"
"$KM" analyze --json "$T/s.csv" >"$T/events.json" 2>/dev/null
check "png: size, maps, event markers" /usr/bin/python3 - "$T/r.png" "$T/map.json" "$T/events.json" <<'PY'
import json, sys
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
m = json.load(open(sys.argv[2]))
ev = [json.loads(l) for l in open(sys.argv[3])]
s = m["scale"]
ok = True
if img.size != (int(m["page_w"] * s), int(m["page_h"] * s)):
    print("  size", img.size); ok = False
px = img.load()
for name in ("mean_map", "peak_map"):
    b = m[name]
    cols = {}
    n = 0
    for y in range(int(b["y"] * s) + 2, int((b["y"] + b["h"]) * s) - 2, 3):
        for x in range(int(b["x"] * s) + 2, int((b["x"] + b["w"]) * s) - 2, 3):
            c = px[x, y]; n += 1
            cols[c] = cols.get(c, 0) + 1
    background = cols.get((240, 240, 240), 0) + cols.get((255, 255, 255), 0)
    print(f"  {name}: {len(cols)} colours, {100 * (1 - background / n):.0f}% painted")
    ok &= len(cols) >= 10 and background / n < 0.5
tl = m["timeline"]
def column_has(t, rgb, tol=40):
    x0 = (tl["x"] + (t - tl["t0"]) / (tl["t1"] - tl["t0"]) * tl["w"]) * s
    for x in range(int(x0) - 3, int(x0) + 4):
        hits = 0
        for y in range(int(tl["y"] * s), int((tl["y"] + tl["h"]) * s), 4):
            c = px[x, y]
            hits += all(abs(c[i] - rgb[i]) <= tol for i in range(3))
        if hits >= 10:
            return True
    return False
t0 = min(e["t_s"] for e in ev) if ev else 0
shown = [e for e in ev if e["type"] in m["colors"]]
first_t = None
for e in shown:
    # the report's time axis starts at the first frame (t = 0 in the CSV)
    t = e["t_s"]
    hit = column_has(t, m["colors"][e["type"]])
    print(f"  {e['type']:12s} at {t:7.2f} s: marker {'found' if hit else 'MISSING'}")
    ok &= hit
ok &= len(shown) >= 3
quiet = [t for t in range(5, 118, 7) if all(abs(t - e["t_s"]) > 2 for e in shown)]
false_marks = [t for t in quiet if any(column_has(t, c) for c in m["colors"].values())]
print(f"  {len(quiet)} quiet times checked, markers at {false_marks}")
ok &= not false_marks
sys.exit(0 if ok else 1)
PY

# a long session: detail pages of 300 s
"$KM" simulate -s release -d 320 --seed 3 -o "$T/long.csv" >/dev/null
check "report pdf of 320 s" "$KM" report "$T/long.csv" -o "$T/long.pdf"
pages=$(pdfinfo "$T/long.pdf" | awk '/^Pages:/ {print $2}')
check "pdf has 1 summary + tables + 2 timeline pages ($pages)" test "${pages:-0}" -eq 4
check "report is 0600" test "$(stat -c %a "$T/long.pdf")" = 600
pdftoppm -r 40 -f 1 -l 1 -png "$T/long.pdf" "$T/p" >/dev/null 2>&1
check "pdf page 1 is not blank" /usr/bin/python3 - "$T"/p-1.png <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("L")
h = im.histogram()
dark = sum(h[:200]) / (im.size[0] * im.size[1])
print(f"  {100 * dark:.0f}% of page 1 drawn")
sys.exit(0 if dark > 0.10 else 1)
PY
pdftotext "$T/long.pdf" "$T/long.txt"
check "pdf lists the holds" grep -q "to spasm s" "$T/long.txt"
check "pdf says not a medical device" grep -q "not a medical device" "$T/long.txt"

# .kmr with metadata, and --deidentify
"$KM" record -q -s "file://$T/s.csv?speed=max" -o "$T/s.kmr" --subject JANE-DOE-1975 --session S7 --operator "Dr Who" >/dev/null
check "report on a .kmr" "$KM" report "$T/s.kmr" -o "$T/k.pdf"
pdftotext "$T/k.pdf" "$T/k.txt"
check "metadata shown" grep -q "JANE-DOE-1975" "$T/k.txt"
check "report --deidentify" "$KM" report "$T/s.kmr" -o "$T/kd.pdf" --deidentify
pdftotext "$T/kd.pdf" "$T/kd.txt"
check "deidentified: no subject" bash -c "! grep -q 'JANE-DOE' '$T/kd.txt' && ! grep -q 'Dr Who' '$T/kd.txt' && ! grep -q 's.kmr' '$T/kd.txt'"
check "deidentified: date moved" grep -q "1985-01-01" "$T/kd.txt"

# imports and other inputs
check "report on a Tekscan export" "$KM" report "$DATA/import/tekscan_ball.asf" -o "$T/tek.png"
check "report on PmatData" "$KM" report "$DATA/pmatdata-S1/1.txt" -o "$T/pmat.png"

# progress: a bar with rate and time left on a terminal, nothing when piped
unset KNOTMAT_NO_PROGRESS
script -qec "'$KM' report '$T/s.csv' -o '$T/tty.pdf'" /dev/null >"$T/tty.out" 2>&1
check "progress bar on a terminal" grep -qE "report \[#*\.*\] +[0-9]+%  [0-9]+ frames  [0-9]+/s  [0-9]+:[0-9]{2} left" "$T/tty.out"
"$KM" report "$T/s.csv" -o "$T/pipe.pdf" >"$T/pipe.out" 2>"$T/pipe.err"
check "no progress when piped" bash -c "! grep -q 'left' '$T/pipe.err' '$T/pipe.out'"
script -qec "'$KM' export '$T/s.kmr' --to csv -o '$T/e.csv'" /dev/null >"$T/etty.out" 2>&1
check "export shows progress on a terminal" grep -q "export \[" "$T/etty.out"
script -qec "'$KM' analyze -q '$T/s.csv'" /dev/null >"$T/atty.out" 2>&1
check "analyze shows progress on a terminal" grep -q "analyze \[" "$T/atty.out"
export KNOTMAT_NO_PROGRESS=1

# errors
"$KM" report "$T/s.csv" -o "$T/r.png" >/dev/null 2>"$T/err"; rc=$?
check "existing output -> 2" test $rc -eq 2
check "existing output: says so" grep -q "never overwritten without --force" "$T/err"
"$KM" report "$T/s.csv" -o "$T/r.svg" >/dev/null 2>"$T/err"; rc=$?
check "bad extension -> 2" test $rc -eq 2
"$KM" report "$T/nope.csv" -o "$T/x.pdf" >/dev/null 2>"$T/err"; rc=$?
check "missing input -> 1" test $rc -eq 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
