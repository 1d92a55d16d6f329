#!/usr/bin/env bash
# The README's first command: installs what is missing, builds fedsilo (Release), splits
# Fashion-MNIST into 10 silos with Dirichlet(0.5) label skew and trains a federation of 10 MPI
# ranks on this machine. Idempotent: reuses the build and the partition, replaces the demo run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

# CUDA only where a GPU is visible; the CPU path is complete.
CUDA=OFF
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then CUDA=AUTO; fi
BUILD="${FEDSILO_BUILD_DIR:-$ROOT/build/release}"
JOBS=$(nproc)

start=$(date +%s)
echo "== building fedsilo (Release, FEDSILO_CUDA=$CUDA) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA="$CUDA" \
  -DFEDSILO_BUILD_TESTS=OFF -DFEDSILO_BUILD_BENCHMARKS=OFF >"$BUILD.configure.log" 2>&1 \
  || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j"$JOBS" --target fedsilo >"$BUILD.build.log" 2>&1 \
  || { tail -50 "$BUILD.build.log"; exit 1; }
FEDSILO="$BUILD/fedsilo"
echo "   built in $(( $(date +%s) - start )) s"

DATA="$ROOT/data/fmnist-dirichlet0.5-10"
if [[ ! -f "$DATA/partition.json" ]]; then
  echo "== partitioning Fashion-MNIST into 10 silos, Dirichlet(0.5)"
  "$FEDSILO" partition --dataset fashion-mnist --silos 10 --scheme dirichlet:0.5 --seed 1 \
    --out "$DATA"
else
  echo "== reusing the partition in $DATA"
fi

MPIRUN=(mpirun --oversubscribe -np 10)
if [[ $(id -u) -eq 0 ]]; then MPIRUN+=(--allow-run-as-root); fi
# Shared memory between ranks of this machine; no network needed.
MPIRUN+=(--mca btl self,vader --mca btl_vader_single_copy_mechanism none)

echo "== training: 10 silos, niid-cnn, FedAvg (examples/demo.toml)"
"${MPIRUN[@]}" "$FEDSILO" train "$ROOT/examples/demo.toml" --overwrite
echo "== demo finished in $(( $(date +%s) - start )) s (build included)"
