#!/usr/bin/env bash
# run.sh [knotmat run options]: install what is missing, build, and start a live
# session (default: the USB mat if exactly one is plugged in, else the simulated
# mat, a person lying on a ball; Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "run: configuring and building in build/ (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKM_BUILD_TESTS=OFF -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build
if [ $# -eq 0 ]; then
  # a real mat when one is plugged in, else the simulated one
  mats=$(build/knotmat devices --json 2>/dev/null || true)
  if [ "$(printf '%s' "$mats" | grep -c '"kind"')" = 1 ]; then
    if printf '%s' "$mats" | grep -q '"access":false'; then
      echo "run: a mat is connected but this user may not open it; install the udev rule:"
      echo "     sudo cmake --install build && sudo udevadm control --reload, then replug it"
      exit 1
    fi
    set -- --source usb://auto
  else
    [ -z "$mats" ] || echo "run: several mats connected; choose one with: $0 --source URI"
    [ -z "$mats" ] || printf '%s\n' "$mats"
    [ -z "$mats" ] || exit 1
    # the live simulator moves to the other side, then lower down: a plan to match
    set -- --source "sim://?scenario=release" --plan "left glute, right glute, left lower back, right lower back"
  fi
fi
echo "run: build/knotmat run $*"
exec build/knotmat run "$@"
