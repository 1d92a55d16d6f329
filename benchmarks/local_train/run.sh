#!/usr/bin/env bash
# Local-training throughput, fedsilo vs PyTorch, side by side in one run (see RESULTS.md,
# "Local training (CPU)"). Installs what the comparison needs (Debian's python3-torch; OpenBLAS,
# which Debian's torch picks up through libblas.so.3), builds local_train, runs both with the
# same settings, prints a table with the ratio and writes JSON beside it.
#
# Usage: benchmarks/local_train/run.sh [--synthetic] [extra local_train args...]
#        benchmarks/local_train/run.sh --device cuda [extra local_train args...]
# Environment: BUILD_DIR (default build/local-train), OUT (default $BUILD_DIR/results),
#              THREADS (2), BATCH (64), BATCHES (200), ROUNDS (5) interleaved rounds of
#              REPEATS (3) timed epochs per program (--device cuda: REPEATS 7, no rounds),
#              QUIET_WAIT (seconds to wait for idle CPUs before timing, default 600; 0 = don't).
# --device cuda (the lent GPU machine: nothing installed, nothing built): runs the local_train
# already built in BUILD_DIR (configured with -DFEDSILO_CUDA=ON) and PyTorch on the GPU
# (PY_CUDA, default python3) for both models at each batch size of GPU_BATCHES (default
# "64 512") over the same first SAMPLES (default 51200 = 800 x 64 = 100 x 512) Fashion-MNIST
# training samples from DATA (default /usr/share/datasets/fashion-mnist), then prints the table
# with the ratios against the targets (>= 3x PyTorch at batch 64, >= 1x at 512).
# Two threads on a 2-core machine measure the machine, not only the code, when anything else
# runs: before each program the script waits until the CPUs have been >= 90% idle for 5 s in a
# row (or QUIET_WAIT runs out) and prints the busy fraction it saw.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/local-train}
OUT=${OUT:-$BUILD_DIR/results}
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
BATCHES=${BATCHES:-200}
REPEATS=${REPEATS:-}
ROUNDS=${ROUNDS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}
PY=/usr/bin/python3  # Debian's python, the one that sees python3-torch
DEVICE=cpu
if [[ ${1:-} == --device ]]; then DEVICE=${2:-}; shift 2; fi

if [[ $DEVICE == cuda ]]; then
  REPEATS=${REPEATS:-7}
  BIN=$BUILD_DIR/benchmarks/local_train
  if [[ ! -x $BIN ]]; then
    echo "run.sh --device cuda: $BIN not found (configure with -DFEDSILO_CUDA=ON, build local_train, carry it)" >&2
    exit 1
  fi
  PYC=${PY_CUDA:-python3}
  SAMPLES=${SAMPLES:-51200}
  GPU_BATCHES=${GPU_BATCHES:-"64 512"}
  DATA=${DATA:-/usr/share/datasets/fashion-mnist}
  COMMIT=${FEDSILO_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
  mkdir -p "$OUT"
  for b in $GPU_BATCHES; do
    if (( SAMPLES % b != 0 )); then echo "run.sh: SAMPLES=$SAMPLES is not a multiple of batch $b" >&2; exit 1; fi
    nb=$(( SAMPLES / b ))
    for m in niid-cnn mlp; do
      "$BIN" --device cuda --data "$DATA" --batch "$b" --batches "$nb" --repeats "$REPEATS" \
          --models "$m" --commit "$COMMIT" --json "$OUT/local_train.cuda.$m.b$b.json" "$@"
      "$PYC" "$ROOT/benchmarks/local_train/pytorch_ref.py" --device cuda --data "$DATA" \
          --batch "$b" --batches "$nb" --repeats "$REPEATS" --models "$m" \
          --json "$OUT/pytorch_ref.cuda.$m.b$b.json"
    done
  done
  "$PYC" - "$OUT" "$GPU_BATCHES" <<'PYEOF'
import json, sys
out, batches = sys.argv[1], [int(b) for b in sys.argv[2].split()]
rows = []
print()
print(f"{'model':<10} {'batch':>6} {'fedsilo med':>12} {'PyTorch med':>12} {'ratio':>7} {'target':>7}")
for b in batches:
    for m in ["niid-cnn", "mlp"]:
        ours = json.load(open(f"{out}/local_train.cuda.{m}.b{b}.json"))
        ref = json.load(open(f"{out}/pytorch_ref.cuda.{m}.b{b}.json"))
        o, t = ours["results"][0], ref["results"][0]
        ratio = o["samples_per_s_median"] / t["samples_per_s_median"]
        target = 3.0 if b == 64 else 1.0
        print(f"{m:<10} {b:>6} {o['samples_per_s_median']:>12.0f} {t['samples_per_s_median']:>12.0f} "
              f"{ratio:>6.2f}x {target:>6.1f}x{'' if ratio >= target else '  MISSED'}")
        rows.append({"model": m, "batch": b, "fedsilo": o, "pytorch": t, "ratio_median": ratio,
                     "target_ratio": target})
print(f"device {ours['device']}, torch {ref['torch']}, commit {ours['commit']}")
json.dump({"benchmark": "local_train_vs_pytorch_cuda", "device": ours["device"],
           "torch": ref["torch"], "commit": ours["commit"], "samples": ours["samples"],
           "rows": rows}, open(f"{out}/local_train_vs_pytorch.cuda.json", "w"), indent=2)
print(f"wrote {out}/local_train_vs_pytorch.cuda.json")
PYEOF
  exit 0
fi

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then echo "run.sh: need root to apt-get install $*" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null
}
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "run.sh: installing python3-torch"
  apt-get update -qq >/dev/null
  apt_install python3-torch python3-numpy
fi
# The machine's own architecture: with arm64 packages also installed (scripts/cross-aarch64.sh)
# a bare name is ambiguous to dpkg.
if ! dpkg -s "libopenblas0:$(dpkg --print-architecture)" >/dev/null 2>&1; then
  echo "run.sh: installing libopenblas0 (otherwise torch runs on the reference BLAS)"
  apt_install libopenblas0
fi
BLAS_SO=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || echo unknown)

# The portable default build (x86-64-v3 baseline, kernels dispatched at run time), also where
# an older configuration of BUILD_DIR had -march=native.
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA=OFF -DFEDSILO_NATIVE=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target local_train >/dev/null
mkdir -p "$OUT"

# Busy fraction of all CPUs over one second, from /proc/stat (user+nice+system+irq+softirq+steal).
busy_1s() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}
wait_quiet() {
  local waited=0 calm=0 b=100
  while (( QUIET_WAIT > 0 && waited < QUIET_WAIT && calm < 5 )); do
    b=$(busy_1s); waited=$((waited + 1))
    if (( b <= 10 )); then calm=$((calm + 1)); else calm=0; fi
  done
  echo "== CPUs busy ${b}% before $1 (waited ${waited} s; load $(cut -d' ' -f1-3 /proc/loadavg))"
}

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && COMMIT="$COMMIT-dirty"
REPEATS=${REPEATS:-3}
COMMON=(--threads "$THREADS" --batch "$BATCH" --batches "$BATCHES" --repeats "$REPEATS")
SYNTH=0
for a in "$@"; do [[ $a == --synthetic ]] && SYNTH=1; done

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; libblas.so.3 -> $BLAS_SO"
# What an AVX2-only node runs, emulated on a CPU with more: FEDSILO_CPU=avx2 (fedsilo's kernels),
# ATEN_CPU_CAPABILITY=avx2 (PyTorch's) and OPENBLAS_CORETYPE=Haswell (both sides' GEMMs).
FORCED="FEDSILO_CPU=${FEDSILO_CPU:-} ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}"
echo "== levels forced by the environment (empty: none): $FORCED"
MODELS=(niid-cnn mlp)
# Interleaved: ROUNDS rounds, each running fedsilo then PyTorch for REPEATS timed epochs. On a
# shared VM whose speed drifts by a third within minutes, back-to-back blocks would compare one
# program's good minutes with the other's bad ones; alternating exposes both to the same drift.
for m in "${MODELS[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    wait_quiet "local_train $m (round $r of $ROUNDS)"
    "$BUILD_DIR/benchmarks/local_train" "${COMMON[@]}" --commit "$COMMIT" --models "$m" \
        --json "$OUT/local_train.$m.r$r.json" "$@"
    [[ $SYNTH -eq 1 ]] && continue  # PyTorch reads the real data
    # PyTorch (Debian's torch calls libblas.so.3, OpenBLAS here) gets the same OpenBLAS kernel
    # family that fedsilo ran on: fedsilo re-runs itself with OPENBLAS_CORETYPE at its kernel
    # level where OpenBLAS alone picks another (0.3.21 picks SSE3 Prescott on Sapphire Rapids).
    core=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["openblas_core"])' \
        "$OUT/local_train.$m.r$r.json")
    wait_quiet "pytorch_ref $m (round $r of $ROUNDS, OPENBLAS_CORETYPE=$core)"
    OPENBLAS_CORETYPE=$core "$PY" "$ROOT/benchmarks/local_train/pytorch_ref.py" "${COMMON[@]}" \
        --models "$m" --json "$OUT/pytorch_ref.$m.r$r.json"
  done
done
[[ $SYNTH -eq 1 ]] && { echo "run.sh: --synthetic: no PyTorch comparison"; exit 0; }

"$PY" - "$OUT" "$BLAS_SO" "$FORCED" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, blas, forced, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
models = ["niid-cnn", "mlp"]

def pooled(prefix, m):
    """One result per model over all rounds: every timed epoch, and each round's median."""
    runs = [json.load(open(f"{out}/{prefix}.{m}.r{r}.json")) for r in range(1, rounds + 1)]
    res = [run["results"][0] for run in runs]
    all_ = [v for x in res for v in x["samples_per_s_all"]]
    merged = dict(res[-1], samples_per_s_all=all_, samples_per_s_median=statistics.median(all_),
                  samples_per_s_min=min(all_), samples_per_s_max=max(all_),
                  round_medians=[x["samples_per_s_median"] for x in res])
    return dict(runs[-1], rounds=rounds, results=[merged])

parts = [pooled("local_train", m) for m in models]
refs = [pooled("pytorch_ref", m) for m in models]
ours = dict(parts[0], results=[p["results"][0] for p in parts])
ref = dict(refs[0], results=[p["results"][0] for p in refs])
json.dump(ours, open(f"{out}/local_train.json", "w"), indent=2)
json.dump(ref, open(f"{out}/pytorch_ref.json", "w"), indent=2)
theirs = {r["model"]: r for r in ref["results"]}
print()
print(f"samples/s, batch {ours['batch']}, {ours['threads']} threads, {ours['machine']}, "
      f"commit {ours['commit']}, fedsilo kernels {ours.get('cpu_level')}, OpenBLAS {ours['openblas_core']} "
      f"(OpenBLAS alone: {ours.get('openblas_core_detected')}; PyTorch runs on the same family)")
print(f"{rounds} interleaved rounds x {ours['repeats']} epochs each; ratio = median / median, "
      f"[range of the per-round ratios]")
print(f"{'model':<10} {'fedsilo med':>12} {'[min, max]':>18} {'PyTorch med':>12} "
      f"{'[min, max]':>18} {'ratio':>7} {'per round':>14}")
rows = []
for r in ours["results"]:
    t = theirs.get(r["model"])
    if t is None:
        continue
    ratio = r["samples_per_s_median"] / t["samples_per_s_median"]
    per_round = [a / b for a, b in zip(r["round_medians"], t["round_medians"])]
    print(f"{r['model']:<10} {r['samples_per_s_median']:>12.0f} "
          f"{'[%.0f, %.0f]' % (r['samples_per_s_min'], r['samples_per_s_max']):>18} "
          f"{t['samples_per_s_median']:>12.0f} "
          f"{'[%.0f, %.0f]' % (t['samples_per_s_min'], t['samples_per_s_max']):>18} "
          f"{ratio:>6.1f}x {'[%.1f, %.1f]' % (min(per_round), max(per_round)):>14}")
    rows.append({"model": r["model"], "fedsilo": r, "pytorch": t, "ratio_median": ratio,
                 "ratio_per_round": per_round})
json.dump({"benchmark": "local_train_vs_pytorch", "machine": ours["machine"],
           "commit": ours["commit"], "threads": ours["threads"], "batch": ours["batch"],
           "rounds": rounds, "repeats_per_round": ours["repeats"],
           "openblas_core": ours["openblas_core"],
           "openblas_core_detected": ours.get("openblas_core_detected"), "libblas": blas, "torch": ref["torch"],
           "cpu_level": ours.get("cpu_level"), "cpu_level_detected": ours.get("cpu_level_detected"),
           "forced_by_environment": forced, "rows": rows},
          open(f"{out}/local_train_vs_pytorch.json", "w"), indent=2)
print(f"wrote {out}/local_train_vs_pytorch.json")
PYEOF
