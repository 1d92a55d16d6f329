#!/usr/bin/env bash
# The README's second command: installs what is missing, builds fedsilo with its tests and runs
# the whole suite with ctest (unit, MPI, end-to-end, Slurm and install tests). Idempotent.
# FEDSILO_WERROR=ON (CI) makes every compiler warning an error; FEDSILO_CUDA=AUTO|ON|OFF.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

BUILD="${FEDSILO_BUILD_DIR:-$ROOT/build/test}"
JOBS=$(nproc)
echo "== configuring $BUILD (FEDSILO_CUDA=${FEDSILO_CUDA:-AUTO}, FEDSILO_WERROR=${FEDSILO_WERROR:-OFF})"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA="${FEDSILO_CUDA:-AUTO}" \
  -DFEDSILO_WERROR="${FEDSILO_WERROR:-OFF}" -DFEDSILO_BUILD_TESTS=ON -DFEDSILO_BUILD_BENCHMARKS=ON
echo "== building"
cmake --build "$BUILD" -j"$JOBS"
echo "== testing"
# The Slurm tests start a real cluster (munged, slurmctld, slurmd) as a CTest fixture and stop
# it after the last test that needs it; stop it here too, should ctest itself be interrupted.
if [[ $(id -u) -eq 0 ]]; then
  trap 'bash "$ROOT/tests/slurm/cluster.sh" stop "$BUILD/tests/slurm/cluster" >/dev/null 2>&1 || true' EXIT
fi
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 600
