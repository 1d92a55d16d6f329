#!/usr/bin/env bash
# Builds the CPU kernels and their unit tests for 64-bit ARM (aarch64) with Debian's cross
# compiler and runs them under qemu-user (tests/cross/CMakeLists.txt). Needs root for the
# packages: g++-aarch64-linux-gnu, qemu-user, and OpenBLAS for arm64 through Debian's multiarch
# (dpkg --add-architecture arm64). Not part of CI (the downloads take minutes); run by hand.
# Speed on ARM is not measured here: qemu-user emulates the instructions. Threads do not run under
# the qemu-user of Debian 12 here (see tests/cross/CMakeLists.txt): the threaded tests are left out.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${FEDSILO_BUILD_DIR:-$ROOT/build/cross-aarch64}
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
need=()
for p in g++-aarch64-linux-gnu qemu-user googletest; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  need+=(libopenblas-dev:arm64)
elif ! dpkg-query -W -f='${Status}' libopenblas-dev:arm64 2>/dev/null | grep -q "install ok installed"; then
  need+=(libopenblas-dev:arm64)
fi
if (( ${#need[@]} > 0 )); then
  echo "cross-aarch64: installing ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cmake -S "$ROOT/tests/cross" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
file "$BUILD/fedsilo_kernel_tests" | sed 's/,.*//'
ctest --test-dir "$BUILD" --output-on-failure
