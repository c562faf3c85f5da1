#!/usr/bin/env bash
# test.sh: install what is missing, then build and run the whole test suite
# three times: a normal build (every test), an AddressSanitizer+UBSan build
# (every test), a ThreadSanitizer build (ring with 10M frames, sources,
# the DSP stage thread and the audio callback), and 30 s of libFuzzer on each
# file reader and on the USB mat protocols' decoders.
# Prints what it does; exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)

echo "== test: normal build (build-test/)"
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test
(cd build-test && ctest --output-on-failure -j"$jobs")

echo "== test: the Release build scripts/run.sh makes (build-release/: -O3 warnings differ)"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DKM_BUILD_TESTS=OFF -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build-release
./build-release/knotmat run -s "sim://release?speed=max&duration=5" -a none >/dev/null

echo "== test: AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKM_ASAN=ON -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan
supp="$PWD/tests/lsan.supp" # third-party caches only (fontconfig), see the file
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$supp \
  ctest --output-on-failure -j"$jobs" -E test_ring_stress)
(cd build-asan && ./tests/test_ring_stress 1000000)

echo "== test: ThreadSanitizer build (build-tsan/), ring tests"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKM_TSAN=ON -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan --target test_ring test_ring_stress test_source test_dsp test_cue test_session
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1" ctest --output-on-failure -L tsan)

echo "== test: libFuzzer (clang, build-fuzz/): .kmr and CSV readers and the USB protocol decoders, 30 s each from the seed corpus"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKM_FUZZ=ON -DKM_ASAN=ON \
  -DKM_BUILD_TESTS=OFF -DKM_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --target fuzz_kmr fuzz_csv fuzz_usb
for t in kmr csv usb; do
  work=$(mktemp -d)
  ./build-fuzz/tests/fuzz/fuzz_$t -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" tests/fuzz/corpus/$t 2>&1 | grep -E "DONE|ERROR|SUMMARY|stat::number_of_executed_units"
  status=${PIPESTATUS[0]}
  rm -rf "$work"
  [ "$status" -eq 0 ] || { echo "fuzz_$t found a problem"; exit 1; }
done

echo "== test: all suites passed"
