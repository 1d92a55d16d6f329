#!/usr/bin/env bash
# Installs every Debian/Ubuntu package that fedsilo's build, tests and demo need.
# Idempotent and quiet: packages already present are not touched, apt-get update runs only
# when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libopenblas-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libsodium-dev libssl-dev zlib1g-dev
  dataset-fashion-mnist
  lmod
  slurmctld slurmd slurm-client slurm-wlm-basic-plugins libslurm-dev munge libpmix-dev
  iproute2 util-linux
  # The PyTorch binding (fedsilo.torch): its build (headers, pybind11) and its tests (torch,
  # numpy, h5py under /usr/bin/python3).
  python3-dev pybind11-dev python3-pybind11 python3-torch python3-numpy python3-h5py
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if (( ${#missing[@]} == 0 )); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
