#!/usr/bin/env bash
# usb_test.sh WRAPPER USBEMU TEST_USB KNOTMAT DATA: the USB mat drivers
# through the real, unmodified libusb against devices emulated with umockdev
# (usbemu.c): the Sensel Morph replaying a real capture, FSR mats in both
# framings, injected faults, unplug and replug, and the knotmat command
# (devices, run, record) on usb://auto. Each run has its own timeout.
set -u
WRAP=$1 EMU=$2 TUSB=$3 KM=$4 DATA=$5
CAP="$DATA/sensel-morph/sensel_recording_20260712_202359.jsonl"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# emu NAME [usbemu options] -- command...: run with a 60 s limit, keep output
emu() {
  local name=$1; shift
  timeout 60 "$WRAP" "$EMU" --stats "$T/$name.stats" "$@" >"$T/$name.out" 2>"$T/$name.err"
  local rc=$?
  if [ $rc -eq 0 ]; then ok "$name"; else bad "$name (exit $rc)"; tail -15 "$T/$name.err"; cat "$T/$name.out"; fi
  grep -h '^{' "$T/$name.out" | head -1
}
has() { if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1: '$2' not in $3"; head -20 "$3"; fi; }

# --- Sensel Morph: the real capture, every frame decoded and checked --------
# the whole capture (725 frames, as its expected results say:
# tests/mats/sensel-morph/expected): it has no counter gap
FRAMES=$(sed -n 's/^frames=//p' "$DATA/sensel-morph/expected")
emu morph-capture --capture "$CAP" --rate 0 -- "$TUSB" morph "$FRAMES" 0 "$DATA/sensel-morph/expected"
# every 25th frame skipped: 690 frames span capture frames 0..717, 28 skipped
emu morph-lost-frames --capture "$CAP" --rate 0 --drop-every 25 -- "$TUSB" morph 690 28
emu morph-faults --capture "$CAP" --rate 0 --fault stall@20 --fault timeout@40 \
  --fault garbage@60 --fault checksum@80 --fault short@100 --fault checksum@120 \
  -- "$TUSB" faults 300 1 1 1 2 1
# 61 stalls in a row: the driver reopens the mat after 50 and goes on; not an unplug
emu morph-stall-run --capture "$CAP" --rate 0 --fault stall@20-80 -- "$TUSB" faults 300 61 0 0 0 0 1
has "reopening reported" "50 faults in a row; reopening it" "$T/morph-stall-run.err"
emu morph-unplug-replug --capture "$CAP" --rate 125 --unplug-at 100 --replug-after 700 \
  -- "$TUSB" hotplug 300

# a load held still for 67 s of device time (one captured scan served 3000 times):
# the driver turns the firmware's dynamic baselining off, and the force stays
emu morph-static --capture "$CAP" --rate 0 --static-frame 300 -- "$TUSB" static 3000
has "dynamic baselining turned off" '"dynamic_baseline":0' "$T/morph-static.stats"

# --- FSR mats: both framings, every cell exact, faults counted --------------
emu fsr-rle --mat fsr-rle --rate 0 -- "$TUSB" fsr 1000
emu fsr-rle-faults --mat fsr-rle --rate 200 --fault garbage@100 --fault short@150 \
  -- "$TUSB" fsr 300 0 1 1
export KNOTMAT_QUIRKS_DIR="$DATA/fsr"
emu fsr-poll --mat fsr-poll --serial KM-POLL-7 --rows 20 --cols 12 --rate 0 -- "$TUSB" fsr 500
# a poll reply cut short and one never sent; garbage is just a short reply here
emu fsr-poll-faults --mat fsr-poll --serial KM-POLL-7 --rows 20 --cols 12 --rate 0 \
  --fault short@30 --fault timeout@50 --fault garbage@70 -- "$TUSB" fsr 200 1 2 0
# a board whose only quirks entry asks for a serial (other VID:PID than the shipped ones)
emu fsr-serial-only --mat fsr-rle --id 1209:4b4d --serial KM-ONLY-3 --rows 10 --cols 10 --rate 0 \
  -- "$TUSB" fsr 300
unset KNOTMAT_QUIRKS_DIR

# --- calibration with a known weight ------------------------------------------
# a 20 kg plate of 20 x 20 cm over 8 x 8 cells of the 16 x 16 FSR mat (100 counts)
export KNOTMAT_CALIBRATION_DIR="$T/cal"
emu cal-none --mat fsr-rle --rate 40 --load 4:4:11:11:100 -- "$KM" run -s usb://auto -d 1 --audio none
has "no calibration: said" "this mat has no calibration" "$T/cal-none.err"
emu cal-fsr --mat fsr-rle --rate 40 --load 4:4:11:11:100 -- "$KM" calibrate --weight 20kg --area 20x20cm -d 2 --settle 0.5
has "calibration written" "wrote $T/cal/16c0-0483-KM-FSR-0001.cal" "$T/cal-fsr.out"
emu cal-fsr-run --mat fsr-rle --rate 40 --load 4:4:11:11:100 -- "$KM" run -s usb://auto -d 2.5 --json --audio none --record "$T/cal.kmr"
python3 - "$T/cal-fsr-run.out" <<'PY' && ok "calibrated FSR mat: the plate weighs 20 kg (196.1 N, within 2 %)" || bad "calibrated FSR force"
import json, sys
st = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"t_s"') and '"fps"' in l and '"force_n"' in l]
print("  force", [s["force_n"] for s in st])
sys.exit(0 if st and all(abs(s["force_n"] - 196.13) <= 0.02 * 196.13 for s in st) else 1)
PY
"$KM" info "$T/cal.kmr" > "$T/cal-info.out" 2>&1
"$KM" info --json "$T/cal.kmr" | python3 -c "import json,sys; c=json.load(sys.stdin)['calibration']; print(c); sys.exit(0 if 'gain' in c and '20.000 kg' in c else 1)" \
  && ok "the recording names its calibration" || bad "calibration in the recording"
# the Morph: its gain checked with a known load (one scan held still, 2 kg said)
emu cal-morph --capture "$CAP" --rate 0 --static-frame 300 -- "$KM" calibrate --weight 2kg -d 3 --settle 0.5
emu cal-morph-run --capture "$CAP" --rate 0 --static-frame 300 -- "$KM" run -s usb://auto -d 1.5 --json --audio none
python3 - "$T/cal-morph-run.out" <<'PY' && ok "calibrated Morph: the held load reads 2 kg (19.6 N, within 2 %)" || bad "calibrated Morph force"
import json, sys
st = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"t_s"') and '"fps"' in l and '"force_n"' in l]
print("  force", [s["force_n"] for s in st])
sys.exit(0 if st and all(abs(s["force_n"] - 19.613) <= 0.02 * 19.613 for s in st) else 1)
PY
unset KNOTMAT_CALIBRATION_DIR

# --- the knotmat command on usb://auto ---------------------------------------
emu cli-devices --capture "$CAP" -- "$KM" devices --json
has "devices lists the Morph" '"kind":"sensel-morph","name":"Sensel Morph","vid_pid":"2c2f:0003","serial":"2044B8374E33"' "$T/cli-devices.out"
has "devices gives the URI" '"uri":"usb://2c2f:0003/2044B8374E33"' "$T/cli-devices.out"
# on the capture's own clock (the emulator's default): the rate knotmat reports is the
# device's, measured from its timestamps, not the 125 Hz of the documentation
emu cli-run --capture "$CAP" -- "$KM" run --source usb://auto --duration 4 --json --audio none
python3 - "$T/cli-run.out" "$CAP" <<'PY' && ok "run on usb://auto: the device clock's rate (within 5 %), nothing dropped" || bad "run on usb://auto rate"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
st = [l for l in lines if "fps" in l and not l.get("summary")]
sm = [l for l in lines if l.get("summary")]
# the device clock of the capture: u32 microseconds at payload bytes 2..5
ts = [int.from_bytes(bytes.fromhex(f["payload_hex"])[2:6], "little")
      for f in map(json.loads, open(sys.argv[2])) if f.get("type") == "frame"]
dt = [(b - a) % (1 << 32) for a, b in zip(ts, ts[1:])]
n = min(sm[0]["frames"] if sm else len(ts), len(ts)) - 1   # the part of the capture played
clock = 1e6 / (sum(dt[:n]) / n)
got = sm[0]["measured_rate_hz"] if sm else 0
print(f"  device clock {clock:.2f} Hz, knotmat measured {got:.2f} Hz (jitter {sm[0]['jitter_ms'] if sm else 0} ms); status fps", [l["fps"] for l in st])
ok = sm and abs(got - clock) <= 0.05 * clock and all(l["dropped"] == 0 for l in st)
ok = ok and all(abs(l["fps"] - clock) <= 0.15 * clock for l in st[1:])
sys.exit(0 if ok else 1)
PY
# the whole real capture once (725 frames on its own clock, ~16 s; a hand on
# the pad, no ball, no twitch, no release): no spasm, no release (issue 11)
emu cli-run-whole --capture "$CAP" -- "$KM" run --source usb://auto --duration 16 --json --audio none
python3 - "$T/cli-run-whole.out" <<'PY' && ok "the real Morph capture: no false spasm or release" || bad "false events on the real capture"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"t_s"') and '"type"' in l]
bad = [e for e in ev if e["type"] in ("spasm", "release")]
frames = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l]
print("  events:", {t: sum(e["type"] == t for e in ev) for t in set(e["type"] for e in ev)},
      "frames", frames[0]["frames"] if frames else "?")
sys.exit(0 if frames and frames[0]["frames"] > 600 and not bad else 1)
PY
emu cli-run-fsr --mat fsr-rle --rate 40 -- "$KM" run --source usb://auto --duration 3 --json --audio none
python3 - "$T/cli-run-fsr.out" <<'PY' && ok "run on an FSR mat: ~40 frames/s, 16x16 uncalibrated" || bad "run on an FSR mat"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
st = [l for l in lines if "fps" in l and not l.get("summary")]
print("  status:", [l["fps"] for l in st])
sys.exit(0 if len(st) >= 2 and all(35 <= l["fps"] <= 45 and l["dropped"] == 0 for l in st[1:]) else 1)
PY
has "FSR mat described" "fsr-rle, 16x16" "$T/cli-run-fsr.err"
emu cli-run-by-id --capture "$CAP" -- "$KM" run --source usb://2c2f:0003/2044B8374E33 --duration 1 --audio none
emu cli-wrong-serial-fails --capture "$CAP" -- sh -c "! '$KM' run --source usb://2c2f:0003/NOPE --duration 1 --audio none"
has "wrong serial: clear error" "no matching mat found" "$T/cli-wrong-serial-fails.err"
# record across an unplug: the recording keeps going and stays valid
emu cli-record-unplug --capture "$CAP" --rate 125 --unplug-at 150 --replug-after 800 \
  -- "$KM" run --source usb://auto --duration 4 --json --audio none --record "$T/unplug.kmr"
has "device_lost event printed" '"type":"device_lost"' "$T/cli-record-unplug.out"
has "device_back event printed" '"type":"device_back"' "$T/cli-record-unplug.out"
has "unplug reported" "was unplugged; waiting for it to come back" "$T/cli-record-unplug.err"
if "$KM" check "$T/unplug.kmr" >"$T/check.out" 2>&1; then ok "recording across the unplug checks"; else bad "check"; cat "$T/check.out"; fi
"$KM" info "$T/unplug.kmr" >"$T/info.out" 2>&1
has "recording names the device" "2c2f:0003" "$T/info.out"
"$KM" analyze --json "$T/unplug.kmr" >"$T/replay.out" 2>/dev/null
has "replay of the recording has device_lost" '"type":"device_lost"' "$T/replay.out"
# permission denied (no udev rule): the node is root's, the user is not
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp"
  emu cli-permission-denied --capture "$CAP" --lock-node yes -- \
    sh -c "! $NOBODY '$KM' run --source usb://auto --duration 1 --audio none"
  has "permission denied: says what to do" "permission denied opening the mat 2c2f:0003 at /dev/bus/usb/001/002: install the udev rule" "$T/cli-permission-denied.err"
  emu cli-devices-denied --capture "$CAP" --lock-node yes -- $NOBODY "$KM" devices
  has "devices marks it" "(permission denied: install the udev rule, README)" "$T/cli-devices-denied.out"
else
  echo "skip permission-denied tests (need root to drop to another user)"
fi

# no mat at all: a clear message, not a hang
if timeout 20 "$KM" run --source usb://auto --duration 1 --audio none >"$T/none.out" 2>"$T/none.err"; then bad "no mat: should fail"; else ok "no mat: fails"; fi
has "no mat: says so" "no pressure mat found" "$T/none.err"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
