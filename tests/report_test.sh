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

# the report tells the session that happened: a live run with non-default
# settings, recorded; the report's holds are the holds of the live events
# (start, end, hold-limit cue), its settings those of the run
"$KM" run -s "sim2://?scenario=session&seed=3&speed=max&duration=240" -a none -j \
    --set max_hold_s=30 --set move_away_mm=20 -r "$T/live.kmr" >"$T/live.json" 2>"$T/live.err"
check "live run recorded" test -s "$T/live.kmr"
check "report on the live recording" "$KM" report "$T/live.kmr" -o "$T/live.pdf" --map "$T/live.map"
check "report holds = the live session's holds" /usr/bin/python3 - "$T/live.json" "$T/live.map" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ev = [e for e in ev if "type" in e]
m = json.load(open(sys.argv[2]))
t0 = m["t_first"]
holds, cur = [], None
for e in ev:
    t = e["t_s"] - t0
    if e["type"] == "on_target":
        if cur: cur["end"], cur["why"] = t, "new hold"; holds.append(cur)
        cur = {"start": t, "limit": None, "end": None, "why": None}
    elif cur and e["type"] == "hold_limit" and cur["limit"] is None:
        cur["limit"] = t - cur["start"]
    elif cur and e["type"] in ("off_target", "device_lost"):
        cur["end"], cur["why"] = t, "off target" if e["type"] == "off_target" else "mat lost"
        holds.append(cur); cur = None
if cur: holds.append(cur)
got = m["holds"]
ok = m["events_from"] == "as recorded live" and len(got) == len(holds) and len(holds) >= 2
ok &= any(h["limit"] is not None for h in holds)  # the non-default limit was heard
for h, g in zip(holds, got):
    same = abs(h["start"] - g["start_s"]) < 1e-3
    same &= (h["limit"] is None) == (g["limit_cue_s"] is None)
    same &= h["limit"] is None or abs(h["limit"] - g["limit_cue_s"]) < 1e-3
    if h["end"] is not None:
        same &= abs(h["end"] - h["start"] - g["held_s"]) < 1e-3 and g["ended"] == h["why"]
    else:
        same &= g["ended"] == "end of recording"
    print(f"  live {h}  report {g}  {'same' if same else 'DIFFERENT'}")
    ok &= bool(same)
sys.exit(0 if ok else 1)
PY
pdftotext "$T/live.pdf" "$T/live.txt"
check "report shows the run's settings" grep -q "max_hold_s=30 " "$T/live.txt"
check "report says the events are the live ones" grep -q "as recorded live" "$T/live.txt"
"$KM" report "$T/live.kmr" -o "$T/re.pdf" --set max_hold_s=60 >/dev/null 2>"$T/err"; rc=$?
check "--set without --reanalyze on a live recording -> 2" test $rc -eq 2
check "  and says why" grep -q "reanalyze" "$T/err"
check "report --reanalyze --set" "$KM" report "$T/live.kmr" -o "$T/re.pdf" --reanalyze \
    --set max_hold_s=60 --map "$T/re.map"
check "re-analysis says so, keeps the recorded settings under --set" /usr/bin/python3 - "$T/re.map" "$T/re.pdf" <<'PY'
import json, subprocess, sys
m = json.load(open(sys.argv[1]))
txt = subprocess.run(["pdftotext", sys.argv[2], "-"], capture_output=True, text=True).stdout
ok = m["events_from"].startswith("re-analysed")
ok &= "max_hold_s=60 " in txt and "move_away_mm=20 " in txt
ok &= all(h["limit_cue_s"] is None or abs(h["limit_cue_s"] - 60) < 0.5 for h in m["holds"])
print("  ", m["events_from"], [h["limit_cue_s"] for h in m["holds"]])
sys.exit(0 if ok else 1)
PY
"$KM" report "$T/s.kmr" -o "$T/rec.pdf" --map "$T/rec.map" >/dev/null
check "a recording without live events is analysed, and says so" grep -q '"events_from":"detected on reading' "$T/rec.map"

# imports and other inputs
check "report on a Tekscan export" "$KM" report "$DATA/tekscan/tekscan_ball.asf" -o "$T/tek.png"
check "report on PmatData" "$KM" report "$DATA/pmatdata/1.txt" -o "$T/pmat.png"

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
