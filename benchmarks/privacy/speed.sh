#!/usr/bin/env bash
# DP-SGD speed (issue 16): fedsilo's DP-SGD beside fedsilo's non-private training and beside
# Opacus 1.4 on Debian's python3-torch 1.13, CPU, in one run. Targets at batch 64 on 2 threads,
# Gaussian noise from the default sampler (Ziggurat): fedsilo DP >= 0.5x fedsilo plain and
# >= 5x Opacus DP. Prints a markdown table and writes results/dp_speed.json beside this script.
#
# What runs: local_train --dp (fedsilo plain and DP-SGD epochs, interleaved repeat by repeat;
# Poisson batches q = batch/N, per-example clipping to norm 1, noise multiplier 1, SGD lr 0.01
# momentum 0.9) and opacus_speed.py (the same for PyTorch plain and Opacus's make_private in
# each grad_sample_mode that works on torch 1.13), one model at a time, in ROUNDS rounds that
# alternate the two programs, each timing REPEATS epochs after its own validation and warm-up.
# On a shared 2-core VM whose speed drifts within minutes, alternating exposes both programs to
# the same drift; before each program the script waits until the CPUs have been >= 90% idle for
# 5 s in a row (or QUIET_WAIT runs out), records the busy fraction and load average it saw and
# the CPU share that other processes took while the program ran, and reruns a round in which
# either exceeded 10%.
#
# Usage: benchmarks/privacy/speed.sh
# Environment: BIN (local_train; default build/test/benchmarks/local_train, not built here),
#   VENV (default /tmp/opacus-venv, created if missing: Debian's python3 with system site
#   packages, so torch is python3-torch; opacus and its pure-Python helpers installed with
#   --no-deps because pip's resolver rejects Debian's torch version "1.13.0a0" and would fetch
#   another torch; scipy 1.10.1 is Debian bookworm's version, needed by Opacus's accountants),
#   DATA (/usr/share/datasets/fashion-mnist), THREADS (2), BATCH (64), BATCHES (100),
#   ROUNDS (5), REPEATS (2), MODELS ("mlp niid-cnn"), MODES (hooks,ew,functorch),
#   QUIET_WAIT (600 s; 0 = don't wait), RETRIES (3: reruns of a disturbed round),
#   WORK (per-round JSON; default a fresh temporary folder),
#   RESULT (default benchmarks/privacy/results/dp_speed.json).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-$ROOT/build/test/benchmarks/local_train}
VENV=${VENV:-/tmp/opacus-venv}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
BATCHES=${BATCHES:-100}
ROUNDS=${ROUNDS:-5}
REPEATS=${REPEATS:-2}
MODELS=${MODELS:-"mlp niid-cnn"}
MODES=${MODES:-hooks,ew,functorch}
QUIET_WAIT=${QUIET_WAIT:-600}
RETRIES=${RETRIES:-3}
WORK=${WORK:-$(mktemp -d /tmp/dp-speed.XXXXXX)}
RESULT=${RESULT:-$HERE/results/dp_speed.json}
PY=/usr/bin/python3  # Debian's python, the one that sees python3-torch

if [[ ! -x $BIN ]]; then
  echo "speed.sh: $BIN not found (build the local_train target first)" >&2
  exit 1
fi
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "speed.sh: $PY lacks torch or numpy (apt-get install python3-torch python3-numpy)" >&2
  exit 1
fi
if ! "$VENV/bin/python" -c 'import opacus, opt_einsum, scipy' 2>/dev/null; then
  echo "speed.sh: setting up $VENV (opacus 1.4.0 over Debian's torch)"
  "$PY" -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install -q --no-deps opacus==1.4.0 opt-einsum scipy==1.10.1
fi

# Busy fraction of all CPUs over one second, from /proc/stat (user+nice+system+irq+softirq+steal).
busy_1s() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}
# wait_quiet LABEL: wait until the CPUs have been <= 10% busy for 5 s in a row (or QUIET_WAIT
# runs out); sets BUSY_BEFORE and WAITED.
wait_quiet() {
  local waited=0 calm=0 b=100
  while (( QUIET_WAIT > 0 && waited < QUIET_WAIT && calm < 5 )); do
    b=$(busy_1s); waited=$((waited + 1))
    if (( b <= 10 )); then calm=$((calm + 1)); else calm=0; fi
  done
  (( QUIET_WAIT > 0 )) || b=$(busy_1s)
  BUSY_BEFORE=$b WAITED=$waited
  echo "== CPUs busy ${b}% before $1 (waited ${waited} s; load $(cut -d' ' -f1-3 /proc/loadavg))"
}
# measured LABEL ATTEMPT CMD...: wait_quiet, run CMD, then append to CONDITIONS the CPU time
# that other processes took while it ran: (busy jiffies of the machine / CLK_TCK - CMD's user
# + system time) / (wall time * CPUs). A quiet wait does not stop a build that starts mid-run.
measured() {
  local label=$1 attempt=$2; shift 2
  wait_quiet "$label"
  local load a b
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  a=($(head -1 /proc/stat))
  /usr/bin/time -f '%e %U %S' -o "$WORK/$label.time" "$@"
  b=($(head -1 /proc/stat))
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
  read -r wall user sys <"$WORK/$label.time"
  FOREIGN=$(awk -v busy="$busy" -v hz="$HZ" -v w="$wall" -v u="$user" -v s="$sys" -v n="$NCPU" \
      'BEGIN { f = (busy / hz - u - s) / (w * n); if (f < 0) f = 0; printf "%.3f", f }')
  echo "== $label: ${wall} s, other processes took ${FOREIGN} of the CPUs meanwhile"
  printf '{"run": "%s", "attempt": %d, "busy_percent_before": %d, "waited_s": %d, "loadavg_before": [%s], "wall_s": %s, "own_cpu_s": %s, "foreign_cpu_share": %s}\n' \
      "$label" "$attempt" "$BUSY_BEFORE" "$WAITED" "${load// /, }" "$wall" \
      "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$FOREIGN" >>"$CONDITIONS"
}
disturbed() {  # disturbed: the last program's CPUs were busy before it, or others ran beside it
  (( BUSY_BEFORE > 10 )) || awk -v f="$FOREIGN" 'BEGIN { exit !(f > 0.10) }'
}

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false
[[ -n $(git -C "$ROOT" status --porcelain -- src kernels mpi cmake CMakeLists.txt benchmarks/local_train 2>/dev/null) ]] && DIRTY=true
MACHINE=$(lscpu | sed -n 's/^Model name: *//p')
BIN_MTIME=$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$WORK" "$(dirname "$RESULT")"
CONDITIONS=$WORK/conditions.jsonl
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
: >"$CONDITIONS"
echo "== machine: $MACHINE, $(nproc) cores; commit $COMMIT (sources dirty: $DIRTY); $BIN built $BIN_MTIME"
echo "== per-round JSON in $WORK"
COMMON=(--data "$DATA" --threads "$THREADS" --batch "$BATCH" --batches "$BATCHES" --repeats "$REPEATS")
for m in $MODELS; do
  for r in $(seq 1 "$ROUNDS"); do
    # A round whose programs shared the CPUs with something else is run again (up to RETRIES
    # times); the conditions of every attempt stay in the JSON.
    for attempt in $(seq 1 $((RETRIES + 1))); do
      measured "local_train.$m.r$r" "$attempt" "$BIN" "${COMMON[@]}" --models "$m" --dp \
          --commit "$COMMIT" --json "$WORK/local_train.$m.r$r.json"
      bad=0; disturbed && bad=1
      # PyTorch (Debian's torch calls libblas.so.3, OpenBLAS) on the OpenBLAS kernel family that
      # fedsilo ran on, as in benchmarks/local_train/run.sh.
      core=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["openblas_core"])' \
          "$WORK/local_train.$m.r$r.json")
      measured "opacus_speed.$m.r$r" "$attempt" env OPENBLAS_CORETYPE="$core" \
          "$VENV/bin/python" "$HERE/opacus_speed.py" "${COMMON[@]}" --models "$m" \
          --modes "$MODES" --json "$WORK/opacus_speed.$m.r$r.json"
      disturbed && bad=1
      (( bad == 0 )) && break
      echo "== round $r of $m was disturbed (attempt $attempt of $((RETRIES + 1)))"
    done
  done
done

"$PY" "$HERE/combine_speed.py" --work "$WORK" --rounds "$ROUNDS" --models "${MODELS// /,}" \
    --machine "$MACHINE" --commit "$COMMIT" --dirty "$DIRTY" --binary "$BIN" --binary-mtime "$BIN_MTIME" \
    --command "THREADS=$THREADS BATCH=$BATCH BATCHES=$BATCHES ROUNDS=$ROUNDS REPEATS=$REPEATS MODES=$MODES benchmarks/privacy/speed.sh" \
    --json "$RESULT"
