#!/usr/bin/env bash
# The README's first command: installs what is missing, builds fedsilo (Release: the command with
# `fedsilo bench`, the benchmark programs and the SPANK plugin, so that every command the README
# shows works from this build), splits Fashion-MNIST into 10 silos with Dirichlet(0.5) label skew
# and trains a federation of 10 MPI ranks on this machine (examples/demo.toml). Idempotent:
# reuses the build and the partition, replaces the demo run.
#
#   FEDSILO_DEMO_ROUNDS=N   train N rounds instead of the config's 30 (CI runs 2)
#   FEDSILO_BUILD_DIR=DIR   build there instead of build/release
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

# CUDA only where a GPU is visible; the CPU path is complete.
CUDA=OFF
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then CUDA=AUTO; fi
BUILD="${FEDSILO_BUILD_DIR:-$ROOT/build/release}"
JOBS=$(nproc)
mkdir -p "$BUILD"

start=$(date +%s)
echo "== building fedsilo (Release, FEDSILO_CUDA=$CUDA) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA="$CUDA" \
  -DFEDSILO_BUILD_TESTS=OFF -DFEDSILO_BUILD_BENCHMARKS=ON >"$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; echo "demo.sh: configuring failed (log: $BUILD/configure.log)"; exit 1; }
cmake --build "$BUILD" -j"$JOBS" >"$BUILD/build.log" 2>&1 \
  || { tail -50 "$BUILD/build.log"; echo "demo.sh: building failed (log: $BUILD/build.log)"; exit 1; }
FEDSILO="$BUILD/fedsilo"
echo "   built in $(( $(date +%s) - start )) s: $FEDSILO"

DATA="$ROOT/data/fmnist-dirichlet0.5-10"
if [[ ! -f "$DATA/partition.json" ]]; then
  echo "== partitioning Fashion-MNIST into 10 silos, Dirichlet(0.5)"
  "$FEDSILO" partition --dataset fashion-mnist --silos 10 --scheme dirichlet:0.5 --seed 1 \
    --out "$DATA" --overwrite
else
  echo "== reusing the partition in $DATA"
fi

CONFIG="$ROOT/examples/demo.toml"
if [[ -n "${FEDSILO_DEMO_ROUNDS:-}" ]]; then
  [[ "$FEDSILO_DEMO_ROUNDS" =~ ^[1-9][0-9]*$ ]] ||
    { echo "demo.sh: FEDSILO_DEMO_ROUNDS must be a positive integer, got '$FEDSILO_DEMO_ROUNDS'"; exit 2; }
  CONFIG="$BUILD/demo-${FEDSILO_DEMO_ROUNDS}rounds.toml"
  sed "s/^rounds = .*/rounds = $FEDSILO_DEMO_ROUNDS/" "$ROOT/examples/demo.toml" > "$CONFIG"
fi
"$FEDSILO" train --check -q "$CONFIG"
ROUNDS=$(sed -n 's/^rounds = \([0-9]*\).*/\1/p' "$CONFIG")

MPIRUN=(mpirun --oversubscribe -np 10)
if [[ $(id -u) -eq 0 ]]; then MPIRUN+=(--allow-run-as-root); fi
# Shared memory between ranks of this machine; no network needed.
MPIRUN+=(--mca btl self,vader --mca btl_vader_single_copy_mechanism none)

echo "== training: 10 silos, niid-cnn, FedAvg, $ROUNDS rounds ($CONFIG)"
"${MPIRUN[@]}" "$FEDSILO" train "$CONFIG" --overwrite

# The run must have finished: a model and one metrics line per round.
RUN="$ROOT/runs/demo"
[[ -f "$RUN/model.h5" ]] || { echo "demo.sh: no $RUN/model.h5"; exit 1; }
lines=$(wc -l < "$RUN/metrics.jsonl")
[[ $lines -eq $ROUNDS ]] || { echo "demo.sh: $RUN/metrics.jsonl has $lines rounds, expected $ROUNDS"; exit 1; }
echo "== demo finished in $(( $(date +%s) - start )) s (build included); the run is in $RUN"
echo "   next: $FEDSILO inspect $RUN/model.h5; $FEDSILO eval $RUN/model.h5 --data $DATA/test.h5"
