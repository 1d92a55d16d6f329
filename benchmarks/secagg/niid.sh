#!/usr/bin/env bash
# NIID-Bench Fashion-MNIST Dirichlet(0.5) (examples/niid-bench/fedavg-dirichlet0.5.toml) with
# secure aggregation (benchmarks/secagg/niid-secure.toml: 20 bits, range 1, max_weight 60000)
# against plain FedAvg (niid-plain.toml), the same binary, the runs at once; prints the final
# and last-5-round mean accuracy of each and updates benchmarks/secagg/results/niid.json.
#   niid.sh [VARIANT...]   variants: niid-VARIANT.toml here (default: plain secure; also
#                          secure-randk10, secure-randk1: a shared rand-k set under secure
#                          aggregation)
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
VARIANTS=("$@")
(( ${#VARIANTS[@]} > 0 )) || VARIANTS=(plain secure)
for v in "${VARIANTS[@]}"; do
  "${MPIRUN[@]}" "$FEDSILO" train "benchmarks/secagg/niid-$v.toml" --resume -q &
done
wait
mkdir -p benchmarks/secagg/results
python3 - "${VARIANTS[@]}" <<'PYEOF'
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
json.dump(out, open(path, "w"), indent=2)
PYEOF
