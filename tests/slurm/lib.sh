# Shared helpers of the Slurm test scripts (sourced). Every wait has a time bound.
set -euo pipefail
: "${SLURM_CONF:?}" "${FEDSILO_BIN:?}" "${FEDSILO_SOURCE_DIR:?}" "${FEDSILO_TEST_DIR:?}"
export SLURM_CONF

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }

# No cluster (not root, or Slurm missing): skip with the reason.
require_cluster() {
  [[ $(id -u) -eq 0 ]] || skip "the Slurm tests need root"
  command -v sbatch >/dev/null || skip "Slurm is not installed (scripts/install-deps.sh)"
  scontrol ping >/dev/null 2>&1 || fail "the test cluster ($SLURM_CONF) does not answer"
}

fresh_test_dir() {
  rm -rf "$FEDSILO_TEST_DIR"
  mkdir -p "$FEDSILO_TEST_DIR"
  chmod 755 "$FEDSILO_TEST_DIR"
}

# job_state JOBID -> PENDING, RUNNING, COMPLETED, FAILED, ... (empty when unknown)
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds; fails after SECONDS.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@"; do
    (( SECONDS < end )) || return 1
    sleep 0.2
  done
}

job_done() { case "$(job_state "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|"") return 0 ;; *) return 1 ;; esac; }

# wait_job JOBID SECONDS: waits until the job ended; cancels it and fails on timeout.
wait_job() {
  if ! wait_for "$2" job_done "$1"; then
    scancel "$1" 2>/dev/null || true
    fail "job $1 did not finish in $2 s (state $(job_state "$1"))"
  fi
}

# same_params A.h5 B.h5: the models' parameters are bitwise equal.
same_params() {
  h5diff -q "$1" "$2" /params /params || fail "params of $1 and $2 differ"
}

# A small Fashion-MNIST partition shared by the Slurm tests (made once per build; tests running
# at the same time wait for the one that makes it).
test_partition() {
  local silos=$1 base; base=$(cd "$FEDSILO_TEST_DIR/.." && pwd)
  local out="$base/fmnist-$silos"
  (
    flock -w 300 9 || fail "timed out waiting for $base/.partition.lock"
    if [[ ! -f "$out/partition.json" ]]; then
      rm -rf "$out" "$out.tmp"
      "$FEDSILO_BIN" partition --dataset fashion-mnist --silos "$silos" --scheme dirichlet:0.5 \
        --seed 1 --max-train 4000 --max-test 1000 -q --out "$out.tmp" >/dev/null || fail "partition failed"
      mv "$out.tmp" "$out"
    fi
  ) 9>"$base/.partition.lock"
  echo "$out"
}
