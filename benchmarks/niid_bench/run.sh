#!/usr/bin/env bash
# NIID-Bench's Fashion-MNIST setup (examples/niid-bench/*.toml): partitions the data, runs each
# federation with --resume (a run may span sessions), then prints final-round accuracy, accuracy
# per round and wall time, and writes benchmarks/niid_bench/results.json.
# Usage: benchmarks/niid_bench/run.sh [RUN...]   (default: all four runs)
#   RUN is a name under examples/niid-bench/ or a path to any config using these partitions
#   (benchmarks/compression_accuracy/run.sh passes its own).
# SEED=S runs a named config with run seed S instead of its 1 (the partition stays seed 1's), as
#   runs/niid-bench/RUN-seedS, summarized under that name.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FEDSILO="${FEDSILO:-$ROOT/build/release/fedsilo}"
[[ -x "$FEDSILO" ]] || { echo "build fedsilo first (scripts/demo.sh or cmake --build build/release)"; exit 1; }

RUNS=("$@")
if (( ${#RUNS[@]} == 0 )); then
  RUNS=(fedavg-dirichlet0.5 fedavg-iid fedprox-dirichlet0.5 fedavg-labels2)
fi

partition() {  # name scheme
  local out="data/niid-bench/fmnist-$1"
  [[ -f "$out/partition.json" ]] || "$FEDSILO" partition --dataset fashion-mnist --silos 10 \
      --scheme "$2" --seed 1 --out "$out" -q
}
partition dirichlet0.5 dirichlet:0.5
partition iid iid
partition labels2 labels:2

MPIRUN=(mpirun --oversubscribe -np 10 --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)

NAMES=()
for run in "${RUNS[@]}"; do
  cfg="$run"
  [[ "$cfg" == *.toml ]] || cfg="examples/niid-bench/$run.toml"
  if [[ -n "${SEED:-}" && "$run" != *.toml ]]; then
    grep -q '^seed = 1$' "$cfg" || { echo "$cfg: no 'seed = 1' line for SEED to replace"; exit 1; }
    run="$run-seed$SEED"
    mkdir -p runs/niid-bench
    sed -e "s/^seed = 1$/seed = $SEED/" \
        -e "s|^out_dir = \"\(.*\)\"|out_dir = \"\1-seed$SEED\"|" "$cfg" > "runs/niid-bench/$run.toml"
    cfg="runs/niid-bench/$run.toml"
  fi
  NAMES+=("$run")
  dir=$(sed -n 's/^out_dir *= *"\(.*\)"/\1/p' "$cfg")
  if [[ -f "$dir/model.h5" ]]; then echo "== $run: finished"; continue; fi
  echo "== $run ($(date -u +%FT%TZ))"
  start=$(date +%s)
  "${MPIRUN[@]}" "$FEDSILO" train "$cfg" --resume
  echo "$(( $(date +%s) - start ))" >> "$dir/wall_seconds.txt"
done

if [[ "${RUNS[0]}" != *.toml ]]; then
  python3 "$ROOT/benchmarks/niid_bench/summarize.py" runs/niid-bench "${NAMES[@]}"
fi
