#!/usr/bin/env bash
# deps.sh [--test]: install the Debian packages knotmat needs, only the missing
# ones, saying what it does. Idempotent. Uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libfftw3-dev libsoundio-dev libespeak-ng-dev espeak-ng-data
      libzstd-dev libisal-dev libedf-dev libhdf5-dev libusb-1.0-0-dev libcairo2-dev libjson-c-dev)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(libcmocka-dev libck-dev python3 pulseaudio pulseaudio-utils clang libclang-rt-14-dev python3-h5py umockdev libumockdev-dev poppler-utils python3-pil tmux)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present (${pkgs[*]})"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
