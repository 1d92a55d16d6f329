#!/usr/bin/env bash
# SPANK plugin: without --fedsilo-silos it does nothing. A plain two-task srun on the cluster
# that loads the plugin runs; the tasks have no FEDSILO_* variables and no mount at data_path,
# and each can read the other "silo's" files (the control of the isolation tests).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"

SILOS="$FEDSILO_TEST_DIR/silos" NSILOS=2
make_silo s0
make_silo s1
write_task_script "$FEDSILO_TEST_DIR/task.sh"
prepare_task_run
rc=0
srun_to step.out -n 2 "$FEDSILO_TEST_DIR/task.sh" || rc=$?
[[ $rc -eq 0 ]] || { cat step.out >&2; fail "plain srun exited $rc"; }
for i in 0 1; do
  j=$((1 - i))
  expect "$i" silo unset
  expect "$i" data_dir unset
  expect "$i" state_dir unset
  expect "$i" data_path_mounts 0
  expect "$i" "other_data_read.s$j" readable
  expect "$i" "other_data_list.s$j" listed
  expect "$i" "other_state_read.s$j" readable
  expect "$i" outside "shared, outside the manifest"
done
echo "PASS: without the option, the tasks ran as without the plugin"
