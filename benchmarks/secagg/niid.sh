#!/usr/bin/env bash
# NIID-Bench Fashion-MNIST Dirichlet(0.5) (examples/niid-bench/fedavg-dirichlet0.5.toml) with
# secure aggregation (benchmarks/secagg/niid-secure.toml: 20 bits, range 1, max_weight 60000)
# against plain FedAvg (niid-plain.toml), the same binary, both runs at once; prints the final
# and last-5-round mean accuracy of each and writes benchmarks/secagg/results/niid.json.
# Environment: FEDSILO (default build/release/fedsilo).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FEDSILO="${FEDSILO:-$ROOT/build/release/fedsilo}"
[[ -f data/niid-bench/fmnist-dirichlet0.5/partition.json ]] ||
  "$FEDSILO" partition --dataset fashion-mnist --silos 10 --scheme dirichlet:0.5 --seed 1 \
    --out data/niid-bench/fmnist-dirichlet0.5 -q
MPIRUN=(mpirun --oversubscribe -np 10 --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
for v in plain secure; do
  "${MPIRUN[@]}" "$FEDSILO" train "benchmarks/secagg/niid-$v.toml" --resume -q &
done
wait
mkdir -p benchmarks/secagg/results
python3 - <<'PYEOF'
import json, statistics
out = {}
for v in ["plain", "secure"]:
    lines = [json.loads(l) for l in open(f"runs/secagg-niid/{v}/metrics.jsonl")]
    acc = [l["accuracy"] for l in lines if "accuracy" in l]
    out[v] = {"final": acc[-1], "last5_mean": statistics.mean(acc[-5:]), "rounds": len(lines)}
    print(f"{v:<7} final {100 * acc[-1]:.2f}%  last-5 mean {100 * statistics.mean(acc[-5:]):.2f}%")
out["difference_points"] = 100 * (out["secure"]["final"] - out["plain"]["final"])
print(f"secure - plain: {out['difference_points']:+.2f} points (target within 0.3)")
json.dump(out, open("benchmarks/secagg/results/niid.json", "w"), indent=2)
PYEOF
