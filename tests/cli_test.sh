#!/usr/bin/env bash
# cli_test.sh KNOTMAT DATA_DIR: the knotmat command as a user drives it:
# exit codes, help, simulate -> info -> run on files, real PmatData files,
# bad files, a live session's rate, and Ctrl-C.
set -u
KM=$1
DATA=$2
EDFCHECK=${3:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); echo "ok   $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
status_is() { local want=$1; shift; "$@" >"$T/out" 2>"$T/err"; local got=$?; [ "$got" = "$want" ] || { echo "  exit $got, wanted $want; stderr: $(head -3 "$T/err")"; return 1; }; }
has() { grep -q -- "$1" "$2" || { echo "  '$1' not in $2: $(head -5 "$2")"; return 1; }; }

# --- help, version, usage errors -----------------------------------------
check "version" status_is 0 "$KM" --version
check "version text" has "knotmat 0.1.0" "$T/out"
check "help" status_is 0 "$KM" --help
for c in run simulate info analyze cues record recover export devices; do
  check "$c --help" status_is 0 "$KM" $c --help
  check "$c --help text" has "Usage: knotmat $c" "$T/out"
done
check "no command -> 2" status_is 2 "$KM"
check "unknown command -> 2" status_is 2 "$KM" frobnicate
check "bad number -> 2" status_is 2 "$KM" run --duration abc
check "bad number message" has "'abc' is not a number" "$T/err"
check "audio latency out of range -> 2" status_is 2 "$KM" run --audio none --audio-latency 2 -d 1
check "audio latency message names the range" has "audio-latency: '2' is not a number in" "$T/err"
check "--plan naming a missing file -> 2" status_is 2 "$KM" run --audio none --plan "$T/no/plan.txt" -d 1
check "--plan missing file: says why" has "No such file or directory" "$T/err"
check "--plan a directory -> 2" status_is 2 "$KM" run --audio none --plan "$T" -d 1
check "--plan a directory: says so" has "cannot be read" "$T/err"
check "simulate without -o -> 2" status_is 2 "$KM" simulate
check "unknown scenario -> 2" status_is 2 "$KM" simulate -s nap -o "$T/x.csv"
check "scenario list" status_is 0 "$KM" simulate --list
for s in release no_release roll_off cough restless session quiet still; do check "scenario $s listed" has "^  $s " "$T/out"; done
check "sim2 scenario" status_is 0 "$KM" simulate -p model=2 -s quiet -d 5 -o "$T/s2.csv"
check "sim2's scenario is not sim's" status_is 2 "$KM" simulate -s quiet -d 5 -o "$T/s1.csv"

# --- simulate, info, replay ------------------------------------------------
check "simulate" status_is 0 "$KM" simulate -s release -d 20 --seed 4 -o "$T/a.csv"
check "labels written" has "^t_s,type,x_mm,y_mm" "$T/a.labels.csv"
check "simulate twice: same bytes" bash -c "'$KM' simulate -s release -d 20 --seed 4 -o '$T/b.csv' >/dev/null && cmp -s '$T/a.csv' '$T/b.csv'"
check "other seed: other bytes" bash -c "'$KM' simulate -s release -d 20 --seed 5 -o '$T/c.csv' >/dev/null && ! cmp -s '$T/a.csv' '$T/c.csv'"
check "info" status_is 0 "$KM" info "$T/a.csv"
check "info frames" has "frames 2000, duration 20.00 s, rate 100.000 Hz" "$T/out"
check "info json" status_is 0 "$KM" info --json "$T/a.csv"
check "info json fields" has '"rows":32,"cols":32,"pitch_mm":12.7' "$T/out"
check "replay max speed" status_is 0 "$KM" run --json -s "file://$T/a.csv?speed=max"
check "replay delivered every frame" has '"frames":2000,.*"dropped_ring":0,"lost_upstream":0,"malformed":0' "$T/out"
check "replay force plausible" python3 - "$T/out" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][0]
sys.exit(0 if 150 < s["mean_force_n"] < 300 and s["max_peak_kpa"] > 50 else 1)
PY

# --- real recordings --------------------------------------------------------
for f in "$DATA"/pmatdata/*.txt; do
  n=$(basename "$f")
  check "run PmatData $n" status_is 0 "$KM" run --json -s "file://$f?speed=max"
  check "PmatData $n corrupt frame reported" has "corrupt frame" "$T/err"
done
check "PmatData 1.txt counts" has '"frames":82,.*"corrupt":1' <("$KM" run --json -s "file://$DATA/pmatdata/1.txt?speed=max" 2>/dev/null)
check "PmatData info" status_is 0 "$KM" info "$DATA/pmatdata/8.txt"
check "PmatData info defects" has "2 corrupt frames" "$T/out"

# --- bad files ---------------------------------------------------------------
head -c 20000 "$T/a.csv" > "$T/trunc.csv"
check "truncated file still runs, exit 3: a frame was lost" status_is 3 "$KM" run --json -s "file://$T/trunc.csv?speed=max"
check "truncated file reported" has "truncated last line" "$T/err"
check "truncated info" status_is 0 "$KM" info "$T/trunc.csv"
check "truncated info counts" has "1 malformed lines" "$T/out"
L=$(( $(grep -n '^t_s' "$T/a.csv" | cut -d: -f1) + 5 ))
sed "${L}s/,[0-9.]*,/,banana,/" "$T/a.csv" > "$T/word.csv"
check "non-number reported with line" bash -c "'$KM' run -s 'file://$T/word.csv?speed=max' 2>&1 >/dev/null | grep -q 'word.csv:$L: cell r0c0: .banana. is not a number'"
check "non-number frame dropped, rest kept" has '"frames":1999,.*"malformed":1' <("$KM" run --json -s "file://$T/word.csv?speed=max" 2>/dev/null)
check "missing file -> 1" status_is 1 "$KM" run -s "file://$T/none.csv"
check "missing file message" has "none.csv: No such file or directory" "$T/err"
printf 'hello\x00world' > "$T/junk.bin"
check "junk file -> 1" status_is 1 "$KM" info "$T/junk.bin"
check "junk message" has "not a knotmat CSV" "$T/err"
check "unknown scheme -> 1" status_is 1 "$KM" run -s "ftp://x"

# --- detection -----------------------------------------------------------------
check "simulate 60 s release" status_is 0 "$KM" simulate -s release -d 60 --seed 3 -o "$T/rel.csv"
check "analyze --json" status_is 0 "$KM" analyze --json "$T/rel.csv"
check "analyze events match the truth" python3 - "$T/out" "$T/rel.labels.csv" <<'PY'
import json, sys, csv
ev = [json.loads(l) for l in open(sys.argv[1])]
for e in ev:
    for k in ("t_s", "type", "x_mm", "y_mm", "force_n", "confidence"):
        assert k in e, (k, e)
truth = list(csv.DictReader(open(sys.argv[2])))
def found(kind, tol):
    return [t for t in truth if t["type"] == kind and
            any(e["type"] == kind and abs(e["t_s"] - float(t["t_s"])) <= tol and
                abs(e["x_mm"] - float(t["x_mm"])) < 12.7 for e in ev)]
sp = [t for t in truth if t["type"] == "spasm"]
ok = len(found("spasm", 0.5)) == len(sp) and len(found("release", 2.0)) == 1
ok = ok and sum(e["type"] == "spasm" for e in ev) == len(sp)
ok = ok and sum(e["type"] == "on_target" for e in ev) == 1
sys.exit(0 if ok else 1)
PY
check "analyze summary" grep -qE "frames \(60.0 s of recording at 100.00 frames/s measured, 100.00 stated\), 0 skipped" "$T/err"
check "analyze --set" status_is 0 "$KM" analyze --no-hotspots --set max_hold_s=20 "$T/rel.csv"
check "hold limit honoured" has "hold_limit" "$T/out"
check "analyze bad --set -> 2" status_is 2 "$KM" analyze --set volume=11 "$T/rel.csv"
check "analyze PmatData: no spasm or release" bash -c "'$KM' analyze --json '$DATA/pmatdata/1.txt' 2>'$T/pm.err' | grep -c '\"type\":\"\(spasm\|release\)\"' | grep -qx 0"
check "analyze PmatData: says spasm detection is off at 1 Hz" has "spasm detection off" "$T/pm.err"
check "run prints events live" bash -c "'$KM' run --json -s 'file://$T/rel.csv?speed=max' 2>/dev/null | grep -q '\"type\":\"spasm\"'"

# --- recordings -----------------------------------------------------------------
check "record from a file at max speed" status_is 0 "$KM" record -q -s "file://$T/rel.csv?speed=max" -o "$T/rel.kmr" --subject S-1 --session 2
check "record reports frames" has "recorded 6000 frames" "$T/out"
check "record never overwrites" status_is 2 "$KM" record -q -s "file://$T/rel.csv?speed=max" -o "$T/rel.kmr"
check "overwrite refusal explained" has "never overwritten without --force" "$T/err"
check "recording is 0600" test "$(stat -c %a "$T/rel.kmr")" = 600
check "check a whole recording" status_is 0 "$KM" check "$T/rel.kmr"
check "check says ok" has ": ok$" "$T/out"
check "info on .kmr" status_is 0 "$KM" info "$T/rel.kmr"
check "info shows metadata" has "subject 'S-1', session '2'" "$T/out"
check "replay .kmr gives the same events as the CSV" bash -c "diff <('$KM' analyze --json '$T/rel.csv' 2>/dev/null) <('$KM' analyze --json '$T/rel.kmr' 2>/dev/null)"
head -c 1500000 "$T/rel.kmr" > "$T/torn.kmr"
check "check a torn recording -> 1" status_is 1 "$KM" check "$T/torn.kmr"
check "check names the first bad byte" has "first bad byte: " "$T/out"
check "recover" status_is 0 "$KM" recover "$T/torn.kmr" -o "$T/fixed.kmr"
check "recovered file passes check" status_is 0 "$KM" check "$T/fixed.kmr"
check "check --help" status_is 0 "$KM" check --help
# a live sim:// (no duration) plays its scenario again and again: twitches,
# releases, lifting off and settling on again (what scripts/run.sh shows)
check "live sim:// plays its story" status_is 0 "$KM" run --json --audio none -s "sim://release?speed=max&seed=2" -d 8
check "live sim:// story: holds, twitches and releases recur" python3 - "$T/out" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"t_s"') and '"type"' in l]
n = lambda t: sum(e["type"] == t for e in ev)
last = max(e["t_s"] for e in ev)
print("  %.0f s of sim time: on_target %d, spasm %d, release %d, off_target %d"
      % (last, n("on_target"), n("spasm"), n("release"), n("off_target")))
cycles = int((last - 20) // 150)   # one scenario every 150 s, each hold settled by 20 s in
ok = cycles >= 1 and n("release") >= cycles and n("spasm") >= cycles and n("on_target") >= cycles + 1
sys.exit(0 if ok else 1)
PY
# the person's marks: keys from a pipe (a capital as its key: Caps Lock; a stray
# key ignored), each a mark event at the key press, in the recording and the
# report, kept by a re-analysis
(sleep 1.5; printf T; sleep 0.5; printf 2; sleep 0.5; printf xr; sleep 3) | \
  "$KM" run --json --audio none --marks - -s "sim://?scenario=release" -d 4 -r "$T/marks.kmr" \
  >"$T/marks.json" 2>"$T/marks.err"
check "marks: twitch, ouch, release at the key presses, counted" python3 - "$T/marks.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
m = [e for e in lines if e.get("type") == "mark"]
s = [l for l in lines if l.get("summary")][0]
print("  marks", [(e["mark"], e["t_s"]) for e in m], "summary", s["marks"], s["marks_lost"])
ok = [e["mark"] for e in m] == ["twitch", "ouch", "release"] and s["marks"] == 3
# a live sim's clock is the host's: the marks are as far apart as the keys
ok &= all(0.35 < b["t_s"] - a["t_s"] < 0.8 for a, b in zip(m, m[1:]))
ok &= all(e["x_mm"] is None and e["detected_t_s"] >= e["t_s"] for e in m)
sys.exit(0 if ok else 1)
PY
check "marks: said in the keys line" has "keys: t or 1 twitch" "$T/marks.err"
check "report shows the marks" status_is 0 "$KM" report "$T/marks.kmr" -o "$T/marks.pdf" --map "$T/marks.map"
check "report: 3 of your marks" has "3 of your marks" "$T/out"
check "report --reanalyze keeps the marks" status_is 0 "$KM" report "$T/marks.kmr" --reanalyze -o "$T/marks2.pdf" --map "$T/marks2.map"
check "report map: the marks against the detector" python3 - "$T/marks.map" "$T/marks2.map" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
ok = [m["mark"] for m in a["marks"]] == ["twitch", "ouch", "release"] and a["marks"] == b["marks"]
ok &= [m["detector"] for m in a["marks"]] == ["spasm", "overpressure", "release"]
ok &= a["agreement"]["twitch"]["marked"] == 1
sys.exit(0 if ok else 1)
PY
check "pdf has the marks table" bash -c "pdftotext '$T/marks.pdf' - | grep -q 'your marks against the detector'"
# on a terminal: a key counts when pressed, no Enter (non-canonical mode)
(sleep 1.5; printf o; sleep 2.5) | script -qec "'$KM' run --json --audio none -s sim:// -d 3" /dev/null >"$T/tty.json" 2>&1
check "marks: a key on the terminal, without Enter" grep -q '"mark":"ouch"' "$T/tty.json"
sleep 2 | script -qec "'$KM' run --audio none -s sim:// -d 1 >/dev/null 2>&1; stty -a" /dev/null >"$T/stty.txt" 2>&1
check "marks: the terminal as it was after the run (canonical, echo)" bash -c "grep -q -- ' icanon' '$T/stty.txt' && grep -qE -- ' echo( |$)' '$T/stty.txt'"
check "--mark-keys twice the same key -> 2" status_is 2 "$KM" run --audio none -d 1 --mark-keys ttr
check "--mark-keys: says why" has "three different keys" "$T/err"
check "--marks a missing file -> 2" status_is 2 "$KM" run --audio none -d 1 --marks "$T/nope/fifo"
check "--marks a directory -> 2" status_is 2 "$KM" run --audio none -d 1 --marks "$T"
check "--marks a directory: says so" has "a directory" "$T/err"
check "run --record" status_is 0 "$KM" run --json --audio none -s "file://$T/rel.csv?speed=max" --record "$T/live.kmr"
check "run --record keeps every frame and event" python3 - "$T/out" "$T/live.kmr" "$KM" <<'PY'
import json, subprocess, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
events = sum(1 for l in lines if "type" in l)
rep = subprocess.run([sys.argv[3], "info", "--json", sys.argv[2]], capture_output=True, text=True).stdout
r = json.loads(rep)
print(f"  {r['frames']} frames, {r['events']} events recorded; {events} events printed")
sys.exit(0 if r["frames"] == 6000 and r["events"] == events and r["whole"] and r["closed"] else 1)
PY

# --- exports -------------------------------------------------------------------
check "export csv" status_is 0 "$KM" export "$T/rel.kmr" --to csv -o "$T/back.csv"
check "exported csv has every frame" has "exported 6000 frames" "$T/out"
check "exported csv gives the same events" bash -c "diff <('$KM' analyze --json '$T/rel.csv' 2>/dev/null) <('$KM' analyze --json '$T/back.csv' 2>/dev/null)"
check "export never overwrites" status_is 2 "$KM" export "$T/rel.kmr" --to csv -o "$T/back.csv"
check "export edf" status_is 0 "$KM" export "$T/rel.kmr" --to edf -o "$T/rel.edf"
if [ -n "$EDFCHECK" ]; then
  "$EDFCHECK" "$T/rel.edf" > "$T/edf.txt" 2>&1
  check "EDFlib reads it back: 7 signals, 60 s, the subject" has "signals 7 duration_s 60.0 start 2.* patient S-1" "$T/edf.txt"
  check "EDF+ annotations hold the spasm and the release" bash -c "grep -q 'annotation .* spasm' '$T/edf.txt' && grep -q 'annotation .* release' '$T/edf.txt'"
  check "export edf --deidentify" status_is 0 "$KM" export "$T/rel.kmr" --to edf -o "$T/deid.edf" --deidentify
  "$EDFCHECK" "$T/deid.edf" > "$T/deid.txt" 2>&1
  check "de-identified: 1985-01-01, no subject" bash -c "grep -q 'start 1985-01-01' '$T/deid.txt' && ! grep -q 'S-1' '$T/deid.txt'"
fi

check "export hdf5" status_is 0 "$KM" export "$T/rel.kmr" --to hdf5 -o "$T/rel.h5"
check "exports are 0600" test "$(stat -c %a "$T/rel.h5")" = 600
if /usr/bin/python3 -c "import h5py, numpy" 2>/dev/null; then
  check "h5py reads every frame, the metadata and the events" /usr/bin/python3 - "$T/rel.h5" "$T/rel.csv" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
kpa = f["frames/kpa"]
assert kpa.shape == (6000, 32, 32) and kpa.dtype == np.float32, kpa.shape
assert f.attrs["subject"] in (b"S-1", "S-1") and float(f.attrs["pitch_mm"]) == 12.7
rows = [l for l in open(sys.argv[2]) if l[0].isdigit()]
for i in (0, 2500, 5999):
    ref = np.array(rows[i].split(",")[1:], dtype=np.float32).reshape(32, 32)
    assert np.allclose(kpa[i], ref, rtol=1e-6, atol=1e-6), i
    assert abs(f["frames/t_s"][i] - float(rows[i].split(",")[0])) < 1e-6
types = [t.decode() for t in f["events/type"][:]]
assert "spasm" in types and "release" in types, types
PY
  check "hdf5 --deidentify" status_is 0 "$KM" export "$T/rel.kmr" --to hdf5 -o "$T/deid.h5" --deidentify
  check "hdf5 de-identified" /usr/bin/python3 -c "
import h5py, sys; a = h5py.File('$T/deid.h5', 'r').attrs
sys.exit(0 if a['subject'] in (b'X', 'X') and a['session'] in (b'X', 'X') and str(a['start_utc']).find('1985-01-01') >= 0 else 1)"
fi

# --- live session ------------------------------------------------------------
check "live sim 2.5 s" status_is 0 "$KM" run --json --duration 2.5 -s "sim://?seed=2"
check "live status lines at ~100 fps" python3 - "$T/out" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
st = [l for l in lines if "fps" in l and "summary" not in l]
ok = len(st) >= 2 and all(85 <= l["fps"] <= 115 and l["dropped"] == 0 for l in st)
sm = [l for l in lines if l.get("summary")][0]
ok = ok and 220 <= sm["frames"] <= 260 and sm["dropped_ring"] == 0
sys.exit(0 if ok else 1)
PY
# --- imports: Tekscan ASCII and XSENSOR CSV -----------------------------------
check "info on a Tekscan export" status_is 0 "$KM" info "$DATA/tekscan/tekscan_ball.asf"
check "Tekscan geometry and units" has "tekscan-ascii, 12 rows x 16 cols, pitch 5.08 mm, units KPa" "$T/out"
check "Tekscan blanks are dead cells" has "2 dead cells" "$T/out"
check "info on an XSENSOR export" status_is 0 "$KM" info "$DATA/xsensor/xsensor_ball.csv"
check "XSENSOR geometry and rate" has "xsensor-csv, 12 rows x 16 cols, pitch 10.16 mm, units mmHg" "$T/out"
check "XSENSOR rate from its Time labels" has "rate 20.000 Hz" "$T/out"
check "import Tekscan into a recording" status_is 0 "$KM" record -q -s "file://$DATA/tekscan/tekscan_ball.asf?speed=max" -o "$T/tek.kmr"
check "imported recording has every frame" has "recorded 5 frames" "$T/out"
check "imported recording checks" status_is 0 "$KM" check "$T/tek.kmr"
check "analyze an XSENSOR export" status_is 0 "$KM" analyze --json "$DATA/xsensor/xsensor_ball.csv"
check "XSENSOR ball found" has '"type":"hotspot"' "$T/out"
printf 'Rows:,2\nColumns:,2\nSensel Width (cm):,1\nUnits:,bananas\n1,2\n3,4\n' >"$T/bad_xs.csv"
check "unknown unit -> error" status_is 1 "$KM" info "$T/bad_xs.csv"
check "unknown unit named" has "pressure unit 'bananas' not understood" "$T/err"

"$KM" run -s sim:// >"$T/int.out" 2>"$T/int.err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
check "Ctrl-C exits 0" test $? -eq 0
check "Ctrl-C prints a summary" has "summary: .* (interrupted)" "$T/int.out"

# --- the examples (public API only) ---------------------------------------------
EX=$(dirname "$KM")/examples
check "example_session runs a simulated session" status_is 0 "$EX/example_session" \
    "sim://?scenario=release&seed=7&speed=max&duration=40"
check "  and prints its events as JSON" has '"type":"on_target"' "$T/out"
"$KM" run -s "sim://?scenario=release&seed=7&speed=max&duration=60" -a none --set max_hold_s=20 \
    -r "$T/ex.kmr" >/dev/null 2>&1
check "example_replay reads a live recording's events" status_is 0 "$EX/example_replay" "$T/ex.kmr"
check "  as recorded, with the run's settings" has "as recorded live (settings: .*max_hold_s=20 " "$T/out"
check "  the limit cue of the run" has "limit cue at 20.0 s held" "$T/out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
