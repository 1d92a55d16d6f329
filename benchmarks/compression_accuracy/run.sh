#!/usr/bin/env bash
# Accuracy with compressed updates: the NIID-Bench Dirichlet(0.5) setup (niid-cnn) and a
# larger mlp [1024, 1024], each dense and with top-k 10%, 1%, 0.1% plus error feedback, and 1%
# without (examples/compression/*.toml), then final accuracy against dense. Runs resume, so the
# set can be run in parts. Usage: benchmarks/compression_accuracy/run.sh [CONFIG...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CONFIGS=("$@")
if (( ${#CONFIGS[@]} == 0 )); then
  CONFIGS=(examples/compression/cnn-{dense,topk10-ef,topk1-ef,topk0.1-ef,topk1-noef}.toml
           examples/compression/mlp-{dense,topk10-ef,topk1-ef,topk0.1-ef,topk1-noef}.toml)
fi
"$ROOT/benchmarks/niid_bench/run.sh" "${CONFIGS[@]}"
python3 "$ROOT/benchmarks/compression_accuracy/summarize.py" runs/compression
