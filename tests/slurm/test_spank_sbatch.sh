#!/usr/bin/env bash
# SPANK plugin through sbatch: `#SBATCH --fedsilo-silos=M` in a two-task job. The batch step is
# left alone (no FEDSILO_SILO, no mount at data_path, both silos' data readable), and the srun
# step inside the script (which inherits the option) gives each task only its own silo.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
ensure_ci_user   # make_silo hands the state directories to fedsilo-ci

SILOS="$FEDSILO_TEST_DIR/silos" NSILOS=2
make_silo s0
make_silo s1
manifest="$FEDSILO_TEST_DIR/manifest.txt"
{ manifest_line s0 root; manifest_line s1 root; } > "$manifest"
write_task_script "$FEDSILO_TEST_DIR/task.sh"
prepare_task_run

cat > job.sbatch <<EOF2
#!/bin/bash
#SBATCH --job-name=spank-sbatch
#SBATCH --ntasks=2
#SBATCH --time=00:02:00
#SBATCH --output=$FEDSILO_TEST_DIR/job.out
#SBATCH --fedsilo-silos=$manifest
echo "batch_silo=\${FEDSILO_SILO:-unset}"
echo "batch_mounts=\$(awk -v p="$DATA_PATH" '\$5 == p' /proc/self/mountinfo | wc -l)"
echo "batch_reads=\$(cat "$SILOS/s0/data/id"),\$(cat "$SILOS/s1/data/id")"
srun "$FEDSILO_TEST_DIR/task.sh"
echo "srun_rc=\$?"
EOF2
job=$(sbatch --parsable job.sbatch) || fail "sbatch failed"
wait_job "$job" 120
state=$(job_state "$job")
[[ "$state" == COMPLETED ]] || { cat job.out >&2 || true; fail "job $job ended $state"; }
field() { sed -n "s/^$1=//p" job.out; }
[[ "$(field batch_silo)" == unset ]] || { cat job.out >&2; fail "the batch step got FEDSILO_SILO"; }
[[ "$(field batch_mounts)" == 0 ]] || { cat job.out >&2; fail "the batch step got a mount at $DATA_PATH"; }
[[ "$(field batch_reads)" == "data of s0,data of s1" ]] || { cat job.out >&2; fail "the batch step could not read both silos"; }
[[ "$(field srun_rc)" == 0 ]] || { cat job.out >&2; fail "the srun step in the job failed"; }
for i in 0 1; do check_isolated "$i" root; done
echo "PASS: job $job: batch step untouched, srun step isolated"
