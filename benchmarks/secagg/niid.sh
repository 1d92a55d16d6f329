#!/usr/bin/env bash
# NIID-Bench Fashion-MNIST Dirichlet(0.5) (examples/niid-bench/fedavg-dirichlet0.5.toml) with
# secure aggregation (benchmarks/secagg/niid-secure.toml: 20 bits, range 1, max_weight 60000)
# against plain FedAvg (niid-plain.toml), the same binary, the runs at once; prints the final
# and last-5-round mean accuracy of each and updates benchmarks/secagg/results/niid.json.
#   niid.sh [VARIANT...]   variants: niid-VARIANT.toml here (default: plain secure; also
#                          secure-randk10, secure-randk1: a shared rand-k set under secure
#                          aggregation; secure-topkprev10, secure-topkprev1; plain-randk10)
# Environment: FEDSILO (default build/release/fedsilo); SEED: a run seed other than the
# configs' 1 (the partition stays seed 1's), written as VARIANT-seedSEED.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FEDSILO="${FEDSILO:-$ROOT/build/release/fedsilo}"
[[ -f data/niid-bench/fmnist-dirichlet0.5/partition.json ]] ||
  "$FEDSILO" partition --dataset fashion-mnist --silos 10 --scheme dirichlet:0.5 --seed 1 \
    --out data/niid-bench/fmnist-dirichlet0.5 -q
MPIRUN=(mpirun --oversubscribe -np 10 --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
VARIANTS=("$@")
(( ${#VARIANTS[@]} > 0 )) || VARIANTS=(plain secure)
NAMES=()
for v in "${VARIANTS[@]}"; do
  cfg="benchmarks/secagg/niid-$v.toml"
  name=$v
  if [[ -n "${SEED:-}" ]]; then
    name="$v-seed$SEED"
    mkdir -p runs/secagg-niid
    sed -e "s/^seed = 1$/seed = $SEED/" -e "s|^out_dir = \"runs/secagg-niid/$v\"|out_dir = \"runs/secagg-niid/$name\"|" \
      "$cfg" > "runs/secagg-niid/$name.toml"
    cfg="runs/secagg-niid/$name.toml"
  fi
  NAMES+=("$name")
  "${MPIRUN[@]}" "$FEDSILO" train "$cfg" --resume -q &
done
wait
mkdir -p benchmarks/secagg/results
python3 - "${NAMES[@]}" <<'PYEOF'
import json, os, statistics, sys
path = "benchmarks/secagg/results/niid.json"
out = json.load(open(path)) if os.path.exists(path) else {}
for v in sys.argv[1:]:
    lines = [json.loads(l) for l in open(f"runs/secagg-niid/{v}/metrics.jsonl")]
    acc = [l["accuracy"] for l in lines if "accuracy" in l]
    out[v] = {"final": acc[-1], "last5_mean": statistics.mean(acc[-5:]), "rounds": len(lines)}
    print(f"{v:<15} final {100 * acc[-1]:.2f}%  last-5 mean {100 * statistics.mean(acc[-5:]):.2f}%")
if "plain" in out and "secure" in out:
    out["difference_points"] = 100 * (out["secure"]["final"] - out["plain"]["final"])
    print(f"secure - plain: {out['difference_points']:+.2f} points (target within 0.3)")
# Over run seeds (SEED=...): each seed's difference, then their mean and spread.
diffs = {k[len("plain"):]: 100 * (out["secure" + k[len("plain"):]]["final"] - v["final"])
         for k, v in out.items() if k.startswith("plain-seed") and "secure" + k[len("plain"):] in out}
if diffs:
    diffs["-seed1"] = out.get("difference_points")
    vals = [d for d in diffs.values() if d is not None]
    out["difference_points_by_seed"] = diffs
    print("secure - plain by seed:", {k: round(d, 2) for k, d in diffs.items()},
          f"mean {statistics.mean(vals):+.2f}, range [{min(vals):+.2f}, {max(vals):+.2f}]")
json.dump(out, open(path, "w"), indent=2)
PYEOF
