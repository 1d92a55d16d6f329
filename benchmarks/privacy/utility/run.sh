#!/usr/bin/env bash
# DP-SGD utility (issue 16): fedsilo on NIID-Bench Fashion-MNIST Dirichlet(0.5), 10 silos,
# niid-cnn, 1 local epoch a round, batch 64, 40 rounds: non-private (dp-plain.toml) and DP-SGD
# at epsilon 3 and 8 per silo (dp-eps3.toml, dp-eps8.toml; delta 1e-5, clip 1, RDP). Runs one
# variant after the other and updates benchmarks/privacy/results/utility.json with each run's
# final and last-5-round mean accuracy and its largest epsilon.
#   run.sh [VARIANT...]     variants: plain eps3 eps8 (default: all three)
# Environment: FEDSILO (default build/release/fedsilo); SEED: a run seed other than the configs'
# 1 (the partition stays seed 1's), written as VARIANT-seedSEED.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
FEDSILO="${FEDSILO:-$ROOT/build/release/fedsilo}"
[[ -f data/niid-bench/fmnist-dirichlet0.5/partition.json ]] ||
  "$FEDSILO" partition --dataset fashion-mnist --silos 10 --scheme dirichlet:0.5 --seed 1 \
    --out data/niid-bench/fmnist-dirichlet0.5 -q
MPIRUN=(mpirun --oversubscribe -np 10 --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
VARIANTS=("$@")
(( ${#VARIANTS[@]} > 0 )) || VARIANTS=(plain eps3 eps8)
NAMES=()
mkdir -p runs/dp-utility
for v in "${VARIANTS[@]}"; do
  name=$v
  [[ -n "${SEED:-}" ]] && name="$v-seed$SEED"
  sed -e "s/^seed = 1$/seed = ${SEED:-1}/" -e "s|^out_dir = \"runs/dp-utility/$v\"|out_dir = \"runs/dp-utility/$name\"|" \
    "benchmarks/privacy/utility/dp-$v.toml" > "runs/dp-utility/$name.toml"
  NAMES+=("$name")
  "${MPIRUN[@]}" "$FEDSILO" train "runs/dp-utility/$name.toml" --resume -q
done
mkdir -p benchmarks/privacy/results
python3 - "${NAMES[@]}" <<'PYEOF'
import json, os, statistics, sys
path = "benchmarks/privacy/results/utility.json"
out = json.load(open(path)) if os.path.exists(path) else {}
for v in sys.argv[1:]:
    lines = [json.loads(l) for l in open(f"runs/dp-utility/{v}/metrics.jsonl")]
    acc = [l["accuracy"] for l in lines if "accuracy" in l]
    row = {"final": acc[-1], "last5_mean": statistics.mean(acc[-5:]), "rounds": len(lines),
           "seconds": sum(l["seconds"]["round"] for l in lines)}
    if "epsilon" in lines[-1]:
        row["epsilon"] = lines[-1]["epsilon"]
        row["delta"] = lines[-1]["delta"]
    out[v] = row
    eps = f"  epsilon {row['epsilon']:.3f}" if "epsilon" in row else ""
    print(f"{v:<12} final {100 * acc[-1]:.2f}%  last-5 mean {100 * row['last5_mean']:.2f}%{eps}")
json.dump(out, open(path, "w"), indent=2, sort_keys=True)
PYEOF
