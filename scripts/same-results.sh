#!/usr/bin/env bash
# Same results before and after a change that must not change behaviour (a refactoring): builds
# fedsilo at BASE (a commit, default origin/main or main) and from the working tree, runs the
# same small federations with each on this machine, and compares their outputs bitwise:
# metrics.jsonl with the timings taken out, and model.h5 (h5diff, exact). Both builds run the
# same CPU kernels (the same machine, the same FEDSILO_CPU), so any difference is the change's.
#
# Usage: scripts/same-results.sh [BASE]
# Environment: WORK (default build/same-results), NP (4 ranks), FEDSILO_CPU (passed through),
# OPENBLAS_CORETYPE (default Haswell, which every x86-64-v3 CPU runs: both builds must run the
# same OpenBLAS kernels, and since 3113e9f fedsilo picks its own family where this is unset).
# The configs: dense-flat, dense-hier, sparse-allgather, sparse-rd, level node (sparse-hier) on
# 2 emulated nodes, FedProx with the CNN, and a run stopped after 2 rounds and resumed to 4.
# Exit 0 when every output is identical; else names the config and the file that differ.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${1:-$(git -C "$ROOT" rev-parse --verify -q origin/main || git -C "$ROOT" rev-parse main)}
WORK=${WORK:-$ROOT/build/same-results}
NP=${NP:-4}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
MPI=(mpirun --oversubscribe -np "$NP")
[[ $(id -u) -eq 0 ]] && MPI=(mpirun --allow-run-as-root --oversubscribe -np "$NP")
command -v h5diff >/dev/null || { echo "same-results: needs h5diff (apt-get install hdf5-tools)" >&2; exit 1; }

mkdir -p "$WORK"
base_sha=$(git -C "$ROOT" rev-parse --short "$BASE")
if [[ ! -d $WORK/base-src/.git && ! -f $WORK/base-src/.git ]]; then
  git -C "$ROOT" worktree add --detach -f "$WORK/base-src" "$BASE" >/dev/null
fi
git -C "$WORK/base-src" checkout -q --detach "$BASE"
build() {  # build SRC DIR: the fedsilo binary only
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA=OFF -DFEDSILO_NATIVE=OFF \
    -DFEDSILO_BUILD_TESTS=OFF -DFEDSILO_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$2" -j"$(nproc)" --target fedsilo >/dev/null
}
echo "same-results: building $base_sha and the working tree"
build "$WORK/base-src" "$WORK/base-build"
build "$ROOT" "$WORK/head-build"

DATA=$WORK/silos
if [[ ! -f $DATA/partition.json ]]; then
  "$WORK/head-build/fedsilo" partition --dataset fashion-mnist --silos "$NP" \
    --scheme dirichlet:0.5 --seed 1 --max-train 2000 --max-test 500 -q --out "$DATA"
fi

# name -> extra TOML (the [run] and [data] sections are added below)
declare -A CONFIGS=(
  [dense-flat]=$'[model]\narch = "mlp"\nhidden = [64]\n[allreduce]\nalgorithm = "dense-flat"\n'
  [dense-hier]=$'[model]\narch = "mlp"\nhidden = [64]\n[allreduce]\nalgorithm = "dense-hier"\n[topology]\nemulated_nodes = 2\n'
  [sparse-allgather]=$'[model]\narch = "mlp"\nhidden = [64]\n[compression]\nmethod = "topk"\ndensity = 0.05\nerror_feedback = true\n[allreduce]\nalgorithm = "sparse-allgather"\n'
  [sparse-rd]=$'[model]\narch = "mlp"\nhidden = [64]\n[compression]\nmethod = "topk"\ndensity = 0.05\nerror_feedback = true\nvalue_type = "fp16"\n[allreduce]\nalgorithm = "sparse-rd"\n'
  [level-node]=$'[model]\narch = "mlp"\nhidden = [64]\n[compression]\nmethod = "topk"\ndensity = 0.05\nerror_feedback = true\nlevel = "node"\n[allreduce]\nalgorithm = "sparse-hier"\n[topology]\nemulated_nodes = 2\n'
  [fedprox-cnn]=$'[model]\narch = "niid-cnn"\n[strategy]\nname = "fedprox"\nmu = 0.01\n'
)
config() {  # config NAME ROUNDS OUT
  printf '[run]\nname = "%s"\nseed = 1\nrounds = %d\nout_dir = "%s"\ncheckpoint_every = 1\n' "$1" "$2" "$3"
  printf '[data]\nsilos_dir = "%s"\ntest_file = "%s/test.h5"\n' "$DATA" "$DATA"
  printf '[local]\nepochs = 1\nbatch_size = 32\nthreads = 1\n'
  printf '%s' "${CONFIGS[${1%-resumed}]:-${CONFIGS[dense-flat]}}"
}
train() {  # train BIN NAME ROUNDS OUT [FLAGS]
  mkdir -p "$4"
  config "$2" "$3" "$4" > "$4.toml"
  "${MPI[@]}" "$1" train "$4.toml" -q "${@:5}" >"$4.log" 2>&1 || {
    echo "same-results: $2 failed with $1:" >&2; tail -5 "$4.log" >&2; exit 1; }
}
strip_timings() {  # metrics.jsonl without the "seconds" object and the "blas" family (3113e9f)
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l); j.pop("seconds", None); j.pop("blas", None); print(json.dumps(j, sort_keys=True))' "$1"
}

fail=0
for side in base head; do rm -rf "$WORK/runs-$side"; mkdir -p "$WORK/runs-$side"; done
mkdir -p "$WORK/run"
for name in "${!CONFIGS[@]}" resumed; do
  for side in base head; do
    bin=$WORK/$side-build/fedsilo
    # Both sides run in the same folder (the config, and so model.h5's config hash, names it),
    # then their outputs move aside.
    out=$WORK/run/$name
    rm -rf "$out"
    if [[ $name == resumed ]]; then
      train "$bin" "$name" 2 "$out"
      train "$bin" "$name" 4 "$out" --resume
    else
      train "$bin" "$name" 3 "$out"
    fi
    mv "$out" "$WORK/runs-$side/$name"
  done
  b=$WORK/runs-base/$name h=$WORK/runs-head/$name
  if ! diff <(strip_timings "$b/metrics.jsonl") <(strip_timings "$h/metrics.jsonl") >/dev/null; then
    echo "DIFFERENT  $name: metrics.jsonl (timings aside)"; fail=1
  elif ! h5diff "$b/model.h5" "$h/model.h5" >/dev/null; then
    echo "DIFFERENT  $name: model.h5"; fail=1
  else
    echo "same       $name ($(wc -l < "$h/metrics.jsonl") rounds, metrics and model.h5)"
  fi
done
echo "same-results: $base_sha vs the working tree ($(git -C "$ROOT" rev-parse --short HEAD)$(
  [[ -n $(git -C "$ROOT" status --porcelain) ]] && echo ' + changes')): $([[ $fail == 0 ]] && echo identical || echo DIFFERENT)"
exit $fail
