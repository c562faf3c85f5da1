#!/usr/bin/env bash
# cue_latency.sh [BUILD_DIR [CONFIG ...]]: run bench_cue_latency (cues under load) against a private
# PulseAudio server with a null sink (started and stopped here), or against
# the running server if PULSE_SERVER is already set.
set -eu
B=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PULSE_SERVER:-}" ]; then
  T=$(mktemp -d); trap 'pulse_stop; rm -rf "$T"' EXIT
  . "$here/tests/pulse_env.sh"
  start_pulse "$T" || { echo "cannot start PulseAudio (apt-get install pulseaudio pulseaudio-utils)"; exit 1; }
fi
# A null sink with nothing attached runs ahead in 2 s blocks (no hardware
# clock), which would measure the fake sink, not knotmat: attach a monitor
# reader and wake the sink, as ../shared/notes/audio-testing.md describes.
if pactl list short sinks 2>/dev/null | grep -q ci_sink; then
  parec -d ci_sink.monitor --latency-msec=10 > /dev/null & REC=$!
  sleep 0.3; pactl suspend-sink ci_sink 1; pactl suspend-sink ci_sink 0
fi
# 200 cues per configuration with two CPU hogs: 10 ms (the old buffer) and
# 25 ms (the default), each without and with real-time priority
"$B/bench/bench_cue_latency" pulseaudio "${CUES:-200}" "${HOGS:-2}" "${@:2}"
[ -n "${REC:-}" ] && kill "$REC" 2>/dev/null || true
