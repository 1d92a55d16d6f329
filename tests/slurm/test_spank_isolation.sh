#!/usr/bin/env bash
# SPANK plugin: `srun -n 2 --fedsilo-silos=M` with two silos gives each task its own silo only.
#
#   test_spank_isolation.sh root   the step runs as root (ALLOWED: root)
#   test_spank_isolation.sh user   the step runs as the unprivileged fedsilo-ci; silo s0 allows
#                                  it by name, silo s1 only through @fedsilo-ci-sup, one of its
#                                  supplementary groups
#
# Each task: FEDSILO_SILO/DATA_DIR/STATE_DIR are right; it reads its own data at
# $FEDSILO_DATA_DIR, cannot write there (read-only); its write to $FEDSILO_STATE_DIR lands in
# its real STATE_DIR; it can neither open nor list the other silo's DATA_DIR and STATE_DIR by
# their real paths; a file outside the manifest stays readable.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
who=${1:?usage: test_spank_isolation.sh root|user}
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
ensure_ci_user   # also for root: make_silo hands the state directories to fedsilo-ci

SILOS="$FEDSILO_TEST_DIR/silos" NSILOS=2
make_silo s0
make_silo s1
manifest="$FEDSILO_TEST_DIR/manifest.txt"
if [[ $who == user ]]; then
  { echo "# silo  DATA_DIR  STATE_DIR  ALLOWED"
    manifest_line s0 "nobody,$CI_USER"
    echo
    manifest_line s1 "root,@$CI_GROUP   # by supplementary group only"
  } > "$manifest"
else
  { manifest_line s0 root; manifest_line s1 "alice,root"; } > "$manifest"
fi
chmod 644 "$manifest"
write_task_script "$FEDSILO_TEST_DIR/task.sh"
prepare_task_run

# Control: without the plugin's option, the other silo's files are readable here.
[[ "$(cat "$SILOS/s1/data/id")" == "data of s1" ]] || fail "control: cannot read s1's data"

rc=0
if [[ $who == user ]]; then
  srun_as_ci_to step.out -n 2 --fedsilo-silos="$manifest" "$FEDSILO_TEST_DIR/task.sh" || rc=$?
else
  srun_to step.out -n 2 --fedsilo-silos="$manifest" "$FEDSILO_TEST_DIR/task.sh" || rc=$?
fi
[[ $rc -eq 0 ]] || { cat step.out >&2; fail "srun exited $rc"; }
for i in 0 1; do
  check_isolated "$i" "$([[ $who == user ]] && echo ci || echo root)"
done
echo "PASS: two tasks ($who), each saw only its own silo"
