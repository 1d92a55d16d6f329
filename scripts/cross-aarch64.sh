#!/usr/bin/env bash
# 64-bit ARM (aarch64) builds with Debian's cross compiler, run under qemu-user. Not part of CI
# (the downloads take minutes); run by hand, as root for the packages.
#
#   scripts/cross-aarch64.sh            the CPU kernels and their unit tests (tests/cross: no MPI,
#                                       no HDF5), OpenBLAS for arm64 through Debian's multiarch
#                                       (dpkg --add-architecture arm64); runs them under qemu.
#   scripts/cross-aarch64.sh --project  the whole project (library, fedsilo, SPANK plugin, tests,
#                                       benchmarks) against an arm64 sysroot: Debian 12's arm64
#                                       packages, downloaded and unpacked into
#                                       $FEDSILO_AARCH64_SYSROOT (default build/aarch64-sysroot),
#                                       not installed (libhdf5-dev and libslurm-dev are not
#                                       Multi-Arch: same, so they cannot sit beside the amd64
#                                       ones); then runs the unit tests that need neither MPI
#                                       ranks nor threads under qemu.
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
if [[ ${1:-} == --project ]]; then
  SYSROOT=${FEDSILO_AARCH64_SYSROOT:-$ROOT/build/aarch64-sysroot}
  PBUILD=${FEDSILO_BUILD_DIR:-$ROOT/build/cross-aarch64-project}
  PKGS=(libopenmpi-dev libhdf5-dev libslurm-dev zlib1g-dev libtomlplusplus-dev libcli11-dev
        libspdlog-dev libfmt-dev nlohmann-json3-dev libopenblas-dev libgtest-dev libbenchmark-dev
        libsodium-dev libssl-dev libstdc++-12-dev libgomp1)
  # The marker holds the package list: a sysroot made for another list is made again.
  if [[ "$(cat "$SYSROOT/.fedsilo-sysroot" 2>/dev/null)" != "${PKGS[*]}" ]]; then
    # apt resolves the packages and their dependencies for arm64 as if nothing were installed
    # (an empty status file) and only downloads them; dpkg-deb unpacks them into the sysroot.
    apt_dir=$SYSROOT.apt
    mkdir -p "$apt_dir/state" "$apt_dir/cache/archives/partial"
    : > "$apt_dir/state/status"
    echo "cross-aarch64: downloading ${PKGS[*]} and their dependencies for arm64"
    apt-get -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
      -o Dir::State::status="$apt_dir/state/status" -o Dir::Cache="$apt_dir/cache" \
      -o Debug::NoLocking=1 --download-only --no-install-recommends -y -qq install "${PKGS[@]}"
    rm -rf "$SYSROOT"
    mkdir -p "$SYSROOT/usr/lib"
    for deb in "$apt_dir"/cache/archives/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
    # Merged /usr, as on an installed Debian 12; absolute links point into the sysroot.
    if [[ -d $SYSROOT/lib && ! -L $SYSROOT/lib ]]; then
      cp -a "$SYSROOT/lib/." "$SYSROOT/usr/lib/" && rm -rf "$SYSROOT/lib" && ln -s usr/lib "$SYSROOT/lib"
    fi
    find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
      ln -sfn "$SYSROOT$(readlink "$link")" "$link"
    done
    echo "${PKGS[*]}" > "$SYSROOT/.fedsilo-sysroot"
  fi
  lib=$SYSROOT/usr/lib/aarch64-linux-gnu
  # What the packages' postinst scripts would set up with update-alternatives: OpenBLAS (pthread
  # variant) as BLAS, and Open MPI's library and headers under their generic names.
  for f in libblas.so libblas.so.3 liblapack.so liblapack.so.3 libopenblas.so libopenblas.so.0; do
    ln -sfn "openblas-pthread/$f" "$lib/$f"
  done
  mkdir -p "$lib/cmake"
  ln -sfn ../openblas-pthread/cmake/openblas "$lib/cmake/openblas"
  ln -sfn openmpi/lib/libmpi.so "$lib/libmpi.so"
  # FindMPI and FindHDF5 would ask the host's mpicc and h5cc (wrappers that name amd64 paths):
  # skip the wrappers and name Open MPI's library and headers in the sysroot.
  FEDSILO_AARCH64_SYSROOT=$SYSROOT cmake -S "$ROOT" -B "$PBUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" -DFEDSILO_CUDA=OFF \
    -DMPI_C_COMPILER=no-mpicc-for-arm64 -DMPI_C_HEADER_DIR="$lib/openmpi/include" \
    -DMPI_C_LIB_NAMES=mpi -DMPI_mpi_LIBRARY="$lib/openmpi/lib/libmpi.so" \
    -DHDF5_C_COMPILER_EXECUTABLE=no-h5cc-for-arm64 >/dev/null
  cmake --build "$PBUILD" -j"$(nproc)"
  file "$PBUILD/fedsilo" | sed 's/,.*//'
  # The unit tests that need neither MPI ranks nor threads, under qemu with the sysroot's loader.
  OPENBLAS_NUM_THREADS=1 qemu-aarch64 -L "$SYSROOT" "$PBUILD/tests/fedsilo_unit_tests" \
    "--gtest_filter=${FEDSILO_CROSS_FILTER:-Kernels.*:Shapes/Conv2dFast.*:CpuLevel.*:Philox.*:Int8.*:Fp16.*:Bf16.*:Randk.*:Sgd.*:QuantizeEncoding.*:Config*.*:H5*.*:WireFormat.*:Idx.*:Dataset.*:Partition*.*:Sampler.*:Slurm*.*:SbatchScript.*:Manifest.*:FedAvg.*:FedProx.*:Secagg*.*:TransformChain.*:Report.*:BlasCore.*}"
  exit
fi
cmake -S "$ROOT/tests/cross" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
file "$BUILD/fedsilo_kernel_tests" | sed 's/,.*//'
ctest --test-dir "$BUILD" --output-on-failure
