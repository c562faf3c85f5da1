#!/usr/bin/env bash
# run.sh [knotmat run options]: install what is missing, build, and start a live
# session (default: the simulated mat, a person lying on a ball; Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "run: configuring and building in build/ (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKM_BUILD_TESTS=OFF -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build
[ $# -gt 0 ] || set -- --source "sim://?scenario=release"
echo "run: build/knotmat run $*"
exec build/knotmat run "$@"
