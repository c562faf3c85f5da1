#!/usr/bin/env bash
# install_test.sh BUILD_DIR CONSUMER_DIR: cmake --install to a scratch prefix
# and use what it installed: CLI, man page, headers, pkg-config, CMake package.
set -eu
B=$1; C=$2
# in a sanitizer build the installed library needs the runtime it was built with
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
P=$(mktemp -d); trap 'rm -rf "$P"' EXIT
cmake --install "$B" --prefix "$P/usr" >/dev/null
fail=0
for f in bin/knotmat include/knotmat/ring.h include/knotmat/source.h share/man/man1/knotmat.1; do
  [ -e "$P/usr/$f" ] || { echo "FAIL missing $f"; fail=1; }
done
libdir=$(ls -d "$P"/usr/lib*/ "$P"/usr/lib/*/ 2>/dev/null | while read d; do [ -e "$d/libknotmat.so" ] && echo "$d"; done | head -1)
[ -n "$libdir" ] || { echo "FAIL libknotmat.so not installed"; exit 1; }
[ -e "$libdir/pkgconfig/knotmat.pc" ] || { echo "FAIL knotmat.pc"; fail=1; }
[ -e "$libdir/cmake/knotmat/knotmatConfig.cmake" ] || { echo "FAIL CMake config"; fail=1; }
"$P/usr/bin/knotmat" --version | grep -q "knotmat 0.1.0" || { echo "FAIL installed CLI"; fail=1; }
[ -f "$P/usr/lib/udev/rules.d/70-knotmat.rules" ] || { echo "FAIL udev rule not under the prefix"; fail=1; }
# an installed knotmat never reads quirks (calibration) from the build tree (D35)
src_quirks="$(cd "$(dirname "$0")/.." && pwd)/drivers/quirks"
if "$P/usr/bin/knotmat" devices --help | grep -qF "$src_quirks"; then
  echo "FAIL the installed CLI reads quirks from the source tree"; fail=1
fi
"$B/knotmat" devices --help | grep -qF "$src_quirks" || { echo "FAIL the build tree's CLI misses the source quirks"; fail=1; }
ls "$P"/usr/share/knotmat/quirks/*.quirks >/dev/null 2>&1 || { echo "FAIL quirks files not installed"; fail=1; }
# only the public API is exported
if nm -D --defined-only "$libdir/libknotmat.so" | awk '{print $3}' | grep -v '^km_' | grep -qv '^_'; then
  echo "FAIL symbols other than km_* exported:"; nm -D --defined-only "$libdir/libknotmat.so" | grep -v ' km_'; fail=1
fi
nm -D --defined-only "$libdir/libknotmat.so" | grep -q ' km_frame_point_' && { echo "FAIL internal symbol exported"; fail=1; }
# pkg-config
PKG_CONFIG_PATH="$libdir/pkgconfig" cc -o "$P/pc_consumer" "$C/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs knotmat) -Wl,-rpath,"$libdir"
"$P/pc_consumer" || { echo "FAIL pkg-config consumer"; fail=1; }
# find_package
cmake -S "$C" -B "$P/cb" -DCMAKE_PREFIX_PATH="$P/usr" >/dev/null
cmake --build "$P/cb" >/dev/null
LD_LIBRARY_PATH="$libdir" "$P/cb/consumer" || { echo "FAIL find_package consumer"; fail=1; }
[ $fail -eq 0 ] && echo "install: ok"
exit $fail
