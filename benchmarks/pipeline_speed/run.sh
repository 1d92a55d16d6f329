#!/usr/bin/env bash
# Same speed after the pipeline reshaping (issue 14): the local-training throughput and the
# allreduce benchmark's 1 Gbit/s target cell of a BASE commit (default 104f9eb, the last one
# before the reshaping) and of the working tree, side by side, REPS (10) interleaved
# repetitions, alternating which build goes first. Both run the same OpenBLAS kernels
# (OPENBLAS_CORETYPE, default the family of this CPU's highest level: since 3113e9f fedsilo
# picks its own where the variable is unset, BASE does not).
#   - local training: local_train, niid-cnn and mlp, 2 threads, batch 64, 200 batches, one
#     timed epoch per run (samples/s);
#   - allreduce: `fedsilo bench allreduce` on the emulated cluster (benchmarks/netem/netem.sh,
#     4 nodes x 2 ranks, 1 Gbit/s), n = 2^24 floats, density 1%, level node, fp16, sparse-hier,
#     ITERS (5) timed iterations after 2 warm-ups, checked (-c); the median rank's time.
# Prints medians, [min, max] and the head / base ratio, and writes $OUT/pipeline_speed.json.
# Needs root (the emulated cluster). Environment: BASE, REPS, ITERS, WORK (build/pipeline-speed),
# OUT (benchmarks/pipeline_speed/results), SKIP_ALLREDUCE=1, SKIP_LOCAL=1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${BASE:-104f9eb}
REPS=${REPS:-10}
ITERS=${ITERS:-5}
WORK=${WORK:-$ROOT/build/pipeline-speed}
OUT=${OUT:-$ROOT/benchmarks/pipeline_speed/results}
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  grep -q ' avx512bw' /proc/cpuinfo && OPENBLAS_CORETYPE=SkylakeX || OPENBLAS_CORETYPE=Haswell
fi
export OPENBLAS_CORETYPE OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$WORK" "$OUT"

base_sha=$(git -C "$ROOT" rev-parse --short "$BASE")
head_sha=$(git -C "$ROOT" rev-parse --short HEAD)
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no) ]] && head_sha="$head_sha-dirty"
if [[ ! -e $WORK/base-src/.git ]]; then
  git -C "$ROOT" worktree add --detach -f "$WORK/base-src" "$BASE" >/dev/null
fi
git -C "$WORK/base-src" checkout -q --detach "$BASE"
build() {  # build SRC DIR
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA=OFF -DFEDSILO_NATIVE=OFF \
    -DFEDSILO_BUILD_TESTS=OFF -DFEDSILO_BUILD_BENCHMARKS=ON >/dev/null
  cmake --build "$2" -j"$(nproc)" --target fedsilo local_train >/dev/null
}
echo "pipeline_speed: building $base_sha and the working tree ($head_sha)"
build "$WORK/base-src" "$WORK/base"
build "$ROOT" "$WORK/head"
echo "pipeline_speed: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, $REPS interleaved repetitions"

for r in $(seq 1 "$REPS"); do
  order=(base head)
  (( r % 2 == 0 )) && order=(head base)
  if [[ -z ${SKIP_LOCAL:-} ]]; then
    for b in "${order[@]}"; do
      for m in niid-cnn mlp; do
        "$WORK/$b/benchmarks/local_train" --threads 2 --batch 64 --batches 200 --repeats 1 \
          --models "$m" --json "$OUT/local.$b.$m.r$r.json" >/dev/null
      done
    done
  fi
  if [[ -z ${SKIP_ALLREDUCE:-} ]]; then
    cmd=""
    for b in "${order[@]}"; do
      cmd+="\$NETEM_MPIRUN -n 8 $WORK/$b/fedsilo bench allreduce -b 64M -e 64M --densities 0.01 "
      cmd+="--level node --value-type fp16 -n $ITERS -w 2 -c --algorithms sparse-hier "
      cmd+="--json $OUT/allreduce.$b.r$r.json > $OUT/allreduce.$b.r$r.txt 2>&1; "
    done
    "$ROOT/benchmarks/netem/netem.sh" --nodes 4 --slots 2 --rate 1gbit -- "$cmd" >/dev/null 2>&1
  fi
  echo "pipeline_speed: repetition $r of $REPS done (load $(cut -d' ' -f1-3 /proc/loadavg))"
done

python3 - "$OUT" "$REPS" "$base_sha" "$head_sha" "$OPENBLAS_CORETYPE" <<'PYEOF'
import json, os, statistics, sys
out, reps, base, head, core = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = []
def row(name, unit, values, higher_is_better, target):
    b, h = values["base"], values["head"]
    if not b or not h:
        return
    mb, mh = statistics.median(b), statistics.median(h)
    ratio = mh / mb
    ok = (ratio >= 1 - target) if higher_is_better else (ratio <= 1 + target)
    rows.append({"measure": name, "unit": unit, "base": b, "head": h, "base_median": mb,
                 "head_median": mh, "head_over_base": ratio, "within": target, "ok": ok})
    print(f"{name:<34} {mb:>10.1f} [{min(b):.1f}, {max(b):.1f}]  {mh:>10.1f} [{min(h):.1f}, {max(h):.1f}]"
          f"  {ratio:5.3f}  {'ok' if ok else 'MISSED'} (within {target:.0%})")
print(f"\nbase {base} vs head {head}, {reps} interleaved repetitions, OPENBLAS_CORETYPE={core}")
print(f"{'measure':<34} {'base median [min, max]':>28}  {'head median [min, max]':>28}  head/base")
for m in ["niid-cnn", "mlp"]:
    v = {b: [json.load(open(f"{out}/local.{b}.{m}.r{r}.json"))["results"][0]["samples_per_s_median"]
             for r in range(1, reps + 1) if os.path.exists(f"{out}/local.{b}.{m}.r{r}.json")]
         for b in ["base", "head"]}
    row(f"local training {m} (samples/s)", "samples/s", v, True, 0.05)
v = {}
for b in ["base", "head"]:
    v[b] = []
    for r in range(1, reps + 1):
        f = f"{out}/allreduce.{b}.r{r}.json"
        if not os.path.exists(f):
            continue
        for x in json.load(open(f))["rows"]:
            # sparse-hier with the leaders' allgather (BASE also has a recursive-doubling row)
            if x["algorithm"] == "sparse-hier" and x.get("check", "ok") == "ok":
                v[b].append(x["time_ms"]["median_rank"])
row("allreduce 1 Gbit/s cell (ms)", "ms", v, False, 0.10)
json.dump({"benchmark": "pipeline_speed", "base": base, "head": head, "repetitions": reps,
           "openblas_coretype": core, "machine": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" \t:"),
           "rows": rows}, open(f"{out}/pipeline_speed.json", "w"), indent=2)
print(f"wrote {out}/pipeline_speed.json")
PYEOF
