#!/usr/bin/env bash
# Federations submitted with sbatch to the test cluster, from scripts written by `fedsilo slurm`.
#
#   test_slurm_jobs.sh federation   a job runs to the end: model, metrics, accuracy, job log
#   test_slurm_jobs.sh template     slurm/fedsilo-job.sbatch with the settings on the sbatch line
#   test_slurm_jobs.sh requeue      `scontrol requeue` mid-run: the job restarts by itself, resumes
#                                   from a round strictly between 0 and the last, and its final
#                                   model equals an uninterrupted run's, bitwise
#   test_slurm_jobs.sh usr1         the same through `scancel --batch --signal=USR1` (what Slurm
#                                   sends before a time limit): fedsilo checkpoints at the round
#                                   boundary, exits 5, the script requeues its own job
#   test_slurm_jobs.sh scancel      `scancel` mid-run (SIGTERM to the ranks): fedsilo checkpoints
#                                   its last completed round and exits 7; the job ends CANCELLED,
#                                   is not requeued, and `--resume` continues from there
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mode=${1:?usage: test_slurm_jobs.sh federation|template|requeue|usr1|scancel}
require_cluster
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
silos_dir=$(test_partition 4)

# write_config NAME ROUNDS EPOCHS: the MLP of the end-to-end tests on the 4-silo subset.
write_config() {
  cat > "$1.toml" <<TOML
[run]
name = "$1"
seed = 1
rounds = $2
out_dir = "runs/$1"
checkpoint_every = 1
[data]
silos_dir = "$silos_dir"
[model]
arch = "mlp"
hidden = [64]
[local]
epochs = $3
batch_size = 32
lr = 0.05
momentum = 0.9
weight_decay = 1e-5
threads = 1
[slurm]
time = "00:10:00"
signal_seconds = 60
TOML
}

# submit NAME: writes NAME.sbatch with `fedsilo slurm` and submits it; prints the job id.
submit() {
  "$FEDSILO_BIN" slurm "$1.toml" -o "$1.sbatch" 2>/dev/null || fail "fedsilo slurm $1.toml failed"
  sbatch --parsable "$1.sbatch" || fail "sbatch $1.sbatch failed"
}

log_of() { echo "$FEDSILO_TEST_DIR/fedsilo-$1-$2.out"; }
rounds_done() { [[ -f "runs/$1/metrics.jsonl" ]] && wc -l < "runs/$1/metrics.jsonl" || echo 0; }

case "$mode" in
federation)
  write_config fed 4 2
  "$FEDSILO_BIN" slurm fed.toml > printed.sbatch || fail "fedsilo slurm (stdout) failed"
  # No slurm.nodes / ranks_per_node: the layout is still pinned, all 4 silos on one node.
  for want in "--ntasks=4" "--nodes=1" "--ntasks-per-node=4" "--distribution=block" "--requeue" \
              "--signal=B:USR1@60" "--open-mode=append" "--time=00:10:00"; do
    grep -q -- "^#SBATCH $want\$" printed.sbatch || fail "script lacks #SBATCH $want"
  done
  grep -q -- 'srun --mpi=pmix --distribution=block .* train .* --resume' printed.sbatch ||
    fail "script does not srun fedsilo train --resume with a block distribution"
  bash -n printed.sbatch || fail "the generated script is not valid bash"
  job=$(submit fed)
  wait_job "$job" 300
  state=$(job_state "$job")
  log=$(log_of fed "$job")
  [[ "$state" == COMPLETED ]] || { cat "$log" >&2 || true; fail "job $job ended $state"; }
  [[ -f runs/fed/model.h5 ]] || fail "no runs/fed/model.h5"
  [[ $(rounds_done fed) -eq 4 ]] || fail "metrics.jsonl has $(rounds_done fed) rounds, expected 4"
  acc=$(tail -n 1 runs/fed/metrics.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
  python3 -c "import sys; sys.exit(0 if $acc >= 0.60 else 1)" || fail "final accuracy $acc < 0.60"
  grep -q "4 silos on 1 node" "$log" || fail "job log lacks the start banner"
  grep -q "fedsilo exited 0" "$log" || fail "job log lacks the exit line"
  echo "PASS: job $job, 4 rounds, accuracy $acc"
  ;;
template)
  write_config tpl 2 1
  for f in "$FEDSILO_SOURCE_DIR"/slurm/*.sbatch "$FEDSILO_SOURCE_DIR"/slurm/examples/*.sbatch; do
    bash -n "$f" || fail "$f is not valid bash"
  done
  job=$(FEDSILO="$FEDSILO_BIN" sbatch --parsable --ntasks=4 --time=10 --export=ALL \
          --output="$FEDSILO_TEST_DIR/tpl-%j.out" "$FEDSILO_SOURCE_DIR/slurm/fedsilo-job.sbatch" tpl.toml) ||
    fail "sbatch of the template failed"
  wait_job "$job" 300
  [[ "$(job_state "$job")" == COMPLETED ]] || { cat "tpl-$job.out" >&2; fail "template job $job ended $(job_state "$job")"; }
  [[ -f runs/tpl/model.h5 && $(rounds_done tpl) -eq 2 ]] || { cat "tpl-$job.out" >&2; fail "template job left no complete run"; }
  grep -q "fedsilo exited 0" "tpl-$job.out" || fail "template job log lacks the exit line"
  echo "PASS: template job $job"
  ;;
requeue|usr1)
  rounds=12
  write_config ref $rounds 6
  write_config run $rounds 6
  # The uninterrupted reference, under the same launcher.
  ref=$(submit ref)
  job=$(submit run)
  # Interrupt once the run has finished a round and is well before its last.
  wait_for 240 bash -c "[[ \$(cat runs/run/metrics.jsonl 2>/dev/null | wc -l) -ge 2 ]]" ||
    { scancel "$job" "$ref"; fail "run did not reach round 2 in 240 s (state $(job_state "$job"))"; }
  at=$(rounds_done run)
  [[ $at -lt $((rounds - 2)) ]] || { scancel "$job" "$ref"; fail "run too fast to interrupt (round $at of $rounds)"; }
  if [[ "$mode" == requeue ]]; then
    scontrol requeue "$job" || fail "scontrol requeue $job failed"
  else
    scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
  fi
  echo "interrupted job $job at round $at ($mode)"
  # Requeued jobs wait for the credential lifetime (cred_expire=10 s in the test cluster).
  wait_for 120 bash -c "[[ \$(scontrol show job $job | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p') -ge 1 ]]" ||
    { scancel "$job" "$ref"; fail "job $job was not requeued (Restarts stays 0)"; }
  wait_job "$job" 420
  wait_job "$ref" 300
  log=$(log_of run "$job")
  [[ "$(job_state "$job")" == COMPLETED ]] || { cat "$log" >&2; fail "job $job ended $(job_state "$job")"; }
  [[ "$(job_state "$ref")" == COMPLETED ]] || fail "reference job $ref ended $(job_state "$ref")"
  restarts=$(job_field "$job" Restarts)
  [[ "$restarts" -ge 1 ]] || fail "Restarts=$restarts"
  grep -q "restart 1," "$log" || { cat "$log" >&2; fail "the job log shows no restart"; }
  # The restarted run resumed from a round strictly between 0 and the last.
  resumed=$(sed -n 's/.*rounds \([0-9]*\)\.\.[0-9]* (resumed).*/\1/p' "$log" | tail -n 1)
  [[ -n "$resumed" ]] || { cat "$log" >&2; fail "the restarted run did not resume"; }
  from=$((resumed - 1))
  (( from > 0 && from < rounds )) || fail "resumed from round $from, not strictly between 0 and $rounds"
  if [[ "$mode" == usr1 ]]; then
    grep -q "SIGUSR1: stopped after round [0-9]* of $rounds, checkpointed" "$log" || { cat "$log" >&2; fail "fedsilo did not checkpoint on USR1"; }
    grep -q "checkpointed; requeueing" "$log" || { cat "$log" >&2; fail "the script did not requeue on exit 5"; }
  fi
  [[ $(rounds_done run) -eq $rounds ]] || fail "metrics.jsonl has $(rounds_done run) rounds, expected $rounds"
  same_params runs/run/model.h5 runs/ref/model.h5
  cmp -s <(python3 -c 'import json,sys
for l in open(sys.argv[1]): j=json.loads(l); print(j["round"], j["accuracy"], j["loss"])' runs/run/metrics.jsonl) \
         <(python3 -c 'import json,sys
for l in open(sys.argv[1]): j=json.loads(l); print(j["round"], j["accuracy"], j["loss"])' runs/ref/metrics.jsonl) ||
    fail "per-round accuracy/loss differ from the uninterrupted run"
  echo "PASS: job $job restarted $restarts time(s), resumed from round $from of $rounds; model equals job $ref's"
  ;;
scancel)
  rounds=40
  write_config can $rounds 6
  sed -i 's/^checkpoint_every = 1$/checkpoint_every = 100/' can.toml  # only the stop checkpoints
  job=$(submit can)
  wait_for 240 bash -c "[[ \$(cat runs/can/metrics.jsonl 2>/dev/null | wc -l) -ge 2 ]]" ||
    { scancel "$job"; fail "run did not reach round 2 in 240 s (state $(job_state "$job"))"; }
  scancel "$job" || fail "scancel $job failed"
  wait_job "$job" 120
  [[ "$(job_state "$job")" == CANCELLED ]] || fail "job $job ended $(job_state "$job"), not CANCELLED"
  [[ "$(job_field "$job" Restarts)" -eq 0 ]] || fail "a cancelled job was requeued"
  [[ ! -f runs/can/model.h5 ]] || fail "a cancelled run wrote model.h5"
  done_rounds=$(rounds_done can)
  (( done_rounds >= 2 && done_rounds < rounds )) || fail "metrics.jsonl has $done_rounds rounds"
  marker=$(printf 'runs/can/checkpoints/ckpt-%06d.done' "$done_rounds")
  [[ -f "$marker" ]] || { ls runs/can/checkpoints >&2; cat "$(log_of can "$job")" >&2; fail "no checkpoint of round $done_rounds"; }
  echo "PASS: job $job cancelled at round $done_rounds, which is checkpointed; not requeued"
  ;;
*) fail "unknown mode $mode" ;;
esac
