#!/usr/bin/env bash
# usb_e2e.sh [BUILD_DIR] [FRAMES]: frames from an emulated USB mat (umockdev,
# tests/usbemu.c) through the real libusb and the usb:// driver into the ring:
# the Sensel Morph replaying its real capture at its 125 frames/s and as fast
# as the emulation allows, and a 64x64 FSR mat free-running at 1 kHz and
# unpaced. Prints one JSON line per run (median run of 3 by frames/s).
set -euo pipefail
B=${1:-build}
N=${2:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAP="$ROOT/tests/mats/sensel-morph/sensel_recording_20260712_202359.jsonl"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/fsr64.quirks" <<'Q'
[Bench FSR 64x64]
MatchUSBID=16c0:0483
Protocol=fsr-rle
Rows=64
Cols=64
PitchMM=10
RateHz=1000
KpaPerCount=0.5
Q
run() {
  local label=$1; shift
  for i in 1 2 3; do
    timeout 120 umockdev-wrapper "$B/tests/usbemu" "$@" -- "$B/bench/bench_usb" --e2e "$N" 2>/dev/null
  done | python3 -c '
import json, sys
runs = sorted((json.loads(l) for l in sys.stdin if l.startswith("{")), key=lambda r: r["fps"])
m = runs[len(runs) // 2]; m["run"] = sys.argv[1]; print(json.dumps(m))' "$label"
}
echo "usb_e2e: $N frames per run, median of 3; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
run "morph at 125 fps" --capture "$CAP" --rate 125
run "morph unpaced" --capture "$CAP" --rate 0
KNOTMAT_QUIRKS_DIR="$T" run "fsr 64x64 at 1000 fps" --mat fsr-rle --rows 64 --cols 64 --rate 1000
KNOTMAT_QUIRKS_DIR="$T" run "fsr 64x64 unpaced" --mat fsr-rle --rows 64 --cols 64 --rate 0
