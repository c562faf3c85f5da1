#!/usr/bin/env bash
# pulse_env.sh: source it to start a private PulseAudio server with a null
# sink (no sound card needed) and point every client at it. Defines
# pulse_stop. Facts behind it: ../shared/notes/audio-testing.md.
#   . tests/pulse_env.sh && start_pulse DIR [rt]   (returns 1 if PulseAudio is missing)
# rt: the server takes real-time priority where allowed, as a desktop's does
# (through rtkit); without it the server is an ordinary process, the worst case.
start_pulse() {
  local dir=$1 rt=no
  [ "${2:-}" = rt ] && rt=yes
  command -v pulseaudio >/dev/null || return 1
  mkdir -p "$dir/runtime" "$dir/home"
  export XDG_RUNTIME_DIR="$dir/runtime" PULSE_RUNTIME_PATH="$dir/runtime" HOME="$dir/home"
  export PULSE_SERVER="unix:$dir/runtime/native"
  cat > "$dir/pa.conf" <<CONF
load-module module-null-sink sink_name=ci_sink rate=48000 channels=1
load-module module-native-protocol-unix auth-anonymous=1 socket=$dir/runtime/native
set-default-sink ci_sink
set-default-source ci_sink.monitor
CONF
  pulseaudio -n -F "$dir/pa.conf" --daemonize=no --exit-idle-time=-1 --use-pid-file=no \
    --realtime=$rt --high-priority=$rt --log-target=file:"$dir/pa.log" &
  PULSE_PID=$!
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "PulseAudio did not start: $(tail -3 "$dir/pa.log")" >&2
  return 1
}
pulse_stop() { [ -n "${PULSE_PID:-}" ] && kill "$PULSE_PID" 2>/dev/null; wait "$PULSE_PID" 2>/dev/null; PULSE_PID=; }
