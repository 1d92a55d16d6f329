#!/usr/bin/env bash
# A PyTorch binding federation as a Slurm job: `fedsilo slurm` on a config with run.command (a
# tiny MLP in tiny_mlp.py, model.arch = "pytorch", 2 silos, 6 rounds) writes a job that sruns the
# script with the config appended and FEDSILO_RESUME=1. The test submits it, sends USR1 through
# `scancel --batch --signal=USR1` after round 1 (what Slurm sends before the time limit): the
# ranks checkpoint at the next round boundary they reach after the signal (rounds of 4 s or
# more leave room for a loaded machine's delivery through the batch script and srun) and exit 5, the script requeues its own job,
# and the restarted job resumes and finishes: model.h5, model.pt and one metrics line per round.
#
# Needs FEDSILO_PYTHON_DIR (the build's python/ folder, which holds the fedsilo package) and
# Debian's /usr/bin/python3 with torch; skipped with the reason otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
python=/usr/bin/python3
[[ -n "${FEDSILO_PYTHON_DIR:-}" && -f "$FEDSILO_PYTHON_DIR/fedsilo/__init__.py" ]] ||
  skip "the PyTorch binding was not built (FEDSILO_PYTHON=AUTO found no Python/pybind11, or OFF)"
"$python" -c 'import torch' 2>/dev/null || skip "$python cannot import torch (apt-get install python3-torch)"
require_cluster
# The job inherits the submitting environment (sbatch --export=ALL): that is how the ranks find
# the build's package; an installed fedsilo writes the PYTHONPATH into the script instead.
export PYTHONPATH="$FEDSILO_PYTHON_DIR${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c 'import fedsilo.torch' || fail "$python cannot import fedsilo.torch from $FEDSILO_PYTHON_DIR"
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
silos_dir=$(test_partition 2)
script="$FEDSILO_SOURCE_DIR/tests/slurm/tiny_mlp.py"
rounds=6

cat > torch.toml <<TOML
[run]
name = "torch"
seed = 1
rounds = $rounds
out_dir = "runs/torch"
checkpoint_every = 1
command = "$python $script --pace 4"
[data]
silos_dir = "$silos_dir"
[model]
arch = "pytorch"
[local]
epochs = 1
batch_size = 32
lr = 0.05
momentum = 0.9
threads = 1
[slurm]
time = "00:10:00"
signal_seconds = 60
TOML

"$FEDSILO_BIN" slurm torch.toml -o torch.sbatch 2>/dev/null || fail "fedsilo slurm torch.toml failed"
bash -n torch.sbatch || fail "the generated script is not valid bash"
for want in "--ntasks=2" "--nodes=1" "--ntasks-per-node=2" "--requeue" "--signal=B:USR1@60"; do
  grep -q -- "^#SBATCH $want\$" torch.sbatch || fail "script lacks #SBATCH $want"
done
grep -qx -- "srun --mpi=pmix --distribution=block $python $script --pace 4 \"\$CONFIG\" &" torch.sbatch ||
  { cat torch.sbatch >&2; fail "script does not srun run.command with the config appended"; }
grep -qx "export FEDSILO_RESUME=1" torch.sbatch || fail "script does not export FEDSILO_RESUME=1"
grep -q "\"\$FEDSILO\" train" torch.sbatch && fail "script still runs fedsilo train"

rounds_done() { [[ -f runs/torch/metrics.jsonl ]] && wc -l < runs/torch/metrics.jsonl || echo 0; }
job=$(sbatch --parsable torch.sbatch) || fail "sbatch torch.sbatch failed"
log="$FEDSILO_TEST_DIR/fedsilo-torch-$job.out"
# Round 1 done, round 2 in flight (each round lasts >= 4 s): stop now.
wait_for 240 bash -c "[[ \$(cat runs/torch/metrics.jsonl 2>/dev/null | wc -l) -ge 1 ]]" ||
  { scancel "$job"; cat "$log" >&2 || true; fail "the job did not finish round 1 in 240 s (state $(job_state "$job"))"; }
at=$(rounds_done)
[[ $at -lt $((rounds - 1)) ]] || { scancel "$job"; fail "run too fast to interrupt (round $at of $rounds)"; }
scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
echo "sent USR1 to job $job after round $at"
# Requeued jobs wait for the credential lifetime (cred_expire=10 s in the test cluster).
wait_for 120 bash -c "[[ \$(scontrol show job $job | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p') -ge 1 ]]" ||
  { scancel "$job"; cat "$log" >&2 || true; fail "job $job was not requeued (Restarts stays 0)"; }
wait_job "$job" 300
[[ "$(job_state "$job")" == COMPLETED ]] || { cat "$log" >&2; fail "job $job ended $(job_state "$job")"; }
grep -q "SIGUSR1: stopped after round [0-9]* of $rounds, checkpointed" "$log" ||
  { cat "$log" >&2; fail "the ranks did not checkpoint on USR1"; }
grep -q "checkpointed; requeueing" "$log" || { cat "$log" >&2; fail "the script did not requeue on exit 5"; }
grep -q "restart 1," "$log" || { cat "$log" >&2; fail "the job log shows no restart"; }
resumed=$(sed -n 's/.*rounds \([0-9]*\)\.\.[0-9]* (resumed).*/\1/p' "$log" | tail -n 1)
[[ -n "$resumed" ]] || { cat "$log" >&2; fail "the restarted job did not resume"; }
from=$((resumed - 1))
(( from > 0 && from < rounds )) || fail "resumed from round $from, not strictly between 0 and $rounds"
grep -q "fedsilo exited 0" "$log" || { cat "$log" >&2; fail "job log lacks the exit line"; }
for f in model.h5 model.pt; do [[ -f runs/torch/$f ]] || fail "no runs/torch/$f"; done
# One metrics line per round, rounds 1..6 in order (the resume cut what followed the checkpoint).
got=$("$python" -c 'import json,sys
print(" ".join(str(json.loads(l)["round"]) for l in open(sys.argv[1])))' runs/torch/metrics.jsonl)
want=$(seq -s " " 1 "$rounds")
[[ "$got" == "$want" ]] || fail "metrics.jsonl has rounds '$got', expected '$want'"
"$python" -c 'import sys, torch
sd = torch.load(sys.argv[1])
assert [tuple(t.shape) for t in sd.values()] == [(32, 784), (32,), (10, 32), (10,)], list(sd)' \
  runs/torch/model.pt || fail "model.pt is not the tiny MLP's state_dict"
"$FEDSILO_BIN" inspect runs/torch/model.h5 >/dev/null || fail "fedsilo inspect cannot read runs/torch/model.h5"
echo "PASS: job $job requeued on USR1 after round $at, resumed from round $from, finished $rounds rounds"
