#!/usr/bin/env bash
# SPANK plugin: silos whose directories lie inside each other's. s0's DATA_DIR is inside s1's
# DATA_DIR, and s1's STATE_DIR inside s0's STATE_DIR:
#
#   N/s1data/id               s1's data         N/s0state/keep            s0's state
#   N/s1data/s0data/id        s0's data         N/s0state/s1state/keep    s1's state
#
# Each task still sees its own data and state at the fixed paths, and nothing of the other
# silo: neither at the real paths (covered, even where the cover also hides the task's own real
# path), nor through its own views (s1 sees s0data inside its data view, s0 sees s1state inside
# its state view: both covered there too).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"

N="$FEDSILO_TEST_DIR/nested"
mkdir -p "$N/s1data/s0data" "$N/s0state/s1state"
echo "data of s1" > "$N/s1data/id"
echo "data of s0" > "$N/s1data/s0data/id"
echo "state of s0" > "$N/s0state/keep"
echo "state of s1" > "$N/s0state/s1state/keep"
{ echo "s0 $N/s1data/s0data $N/s0state root"
  echo "s1 $N/s1data $N/s0state/s1state root"; } > manifest.txt

paths=("$N/s1data/id" "$N/s1data/s0data/id" "$DATA_PATH/id" "$DATA_PATH/s0data/id"
       "$N/s0state/keep" "$N/s0state/s1state/keep" "$STATE_PATH/keep" "$STATE_PATH/s1state/keep")
cat > task.sh <<TASK
#!/bin/bash
for p in ${paths[*]}; do
  if c=\$(cat "\$p" 2> /dev/null); then echo "\$p=\$c"; else echo "\$p=refused"; fi
done > "$FEDSILO_TEST_DIR/task.\$SLURM_PROCID"
echo "task \$SLURM_PROCID" > "\$FEDSILO_STATE_DIR/out"
TASK
chmod 755 task.sh

rc=0
srun_to step.out -n 2 --fedsilo-silos="$FEDSILO_TEST_DIR/manifest.txt" "$FEDSILO_TEST_DIR/task.sh" || rc=$?
[[ $rc -eq 0 ]] || { cat step.out >&2; fail "srun exited $rc"; }

# sees TASK PATH-INDEX VALUE
sees() {
  local got
  got=$(grep -F "${paths[$2]}=" "task.$1" | head -n 1 | sed "s|^${paths[$2]}=||")
  [[ "$got" == "$3" ]] || { cat "task.$1" >&2; fail "task $1 reading ${paths[$2]}: '$got', expected '$3'"; }
}
#        s1data/id   s1data/s0data/id   data_path/id   data_path/s0data/id
sees 0 0 refused;    sees 0 1 refused;  sees 0 2 "data of s0";  sees 0 3 refused
sees 1 0 "data of s1"; sees 1 1 refused; sees 1 2 "data of s1";  sees 1 3 refused
#        s0state/keep   s0state/s1state/keep   state_path/keep   state_path/s1state/keep
sees 0 4 "state of s0"; sees 0 5 refused;  sees 0 6 "state of s0"; sees 0 7 refused
sees 1 4 refused;       sees 1 5 refused;  sees 1 6 "state of s1"; sees 1 7 refused
[[ "$(cat "$N/s0state/out")" == "task 0" ]] || fail "task 0's state write did not land in s0's STATE_DIR"
[[ "$(cat "$N/s0state/s1state/out")" == "task 1" ]] || fail "task 1's state write did not land in s1's STATE_DIR"
echo "PASS: nested silo directories stay apart"
