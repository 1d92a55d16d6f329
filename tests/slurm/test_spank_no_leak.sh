#!/usr/bin/env bash
# SPANK plugin: the tasks' mounts stay in their own mount namespaces. While a two-silo step
# runs, each task's namespace has its bind mounts at data_path and state_path and the covers
# over the other silo's directories (so the check below looks at the right paths), and the
# host's /proc/self/mountinfo has none of them; after the step, still none.
# The silos live on a tmpfs made shared (as / is on systemd hosts, not on this CI machine), so
# covers mounted over them in a task's namespace would propagate to the host unless the plugin
# makes the task's mounts private.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
require_spank
umount -R "$FEDSILO_TEST_DIR/shared" 2>/dev/null || true   # left by an interrupted run
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
mkdir shared
mount -t tmpfs -o size=1m,mode=755 fedsilo-test-shared shared || fail "cannot mount a tmpfs"
mount --make-shared shared || fail "cannot make $FEDSILO_TEST_DIR/shared shared"
cleanup() { umount -R "$FEDSILO_TEST_DIR/shared" 2>/dev/null || true; }
trap cleanup EXIT

SILOS="$FEDSILO_TEST_DIR/shared/silos"
make_silo s0
make_silo s1
manifest="$FEDSILO_TEST_DIR/manifest.txt"
{ manifest_line s0 root; manifest_line s1 root; } > "$manifest"
watched=("$DATA_PATH" "$STATE_PATH" "$SILOS")

leaks=$(host_mounts_at "${watched[@]}")
[[ -z "$leaks" ]] || fail "mounts under the watched paths before the step: $leaks"

# Each task writes its pid, then waits (bounded) for the go file.
mkdir -p pids
cat > task.sh <<TASK
#!/bin/bash
echo \$\$ > "$FEDSILO_TEST_DIR/pids/\$SLURM_PROCID"
for _ in \$(seq 1 300); do [[ -e "$FEDSILO_TEST_DIR/go" ]] && exit 0; sleep 0.1; done
exit 3
TASK
chmod 755 task.sh
srun_to step.out -n 2 --fedsilo-silos="$manifest" "$FEDSILO_TEST_DIR/task.sh" &
srun_pid=$!
trap 'touch "$FEDSILO_TEST_DIR/go"; wait $srun_pid 2>/dev/null || true; cleanup' EXIT
both_started() { [[ -s pids/0 && -s pids/1 ]]; }
wait_for 60 both_started || { cat step.out >&2; fail "the tasks did not start in 60 s"; }

for i in 0 1; do
  pid=$(cat "pids/$i")
  j=$((1 - i))
  inside=$(cat "/proc/$pid/mountinfo") || fail "task $i (pid $pid) is gone"
  for want in "$DATA_PATH" "$STATE_PATH" "$SILOS/s$j/data" "$SILOS/s$j/state"; do
    awk -v p="$want" '$5 == p { found = 1 } END { exit !found }' <<< "$inside" ||
      fail "task $i's namespace has no mount at $want (the check would be vacuous)"
  done
done
leaks=$(host_mounts_at "${watched[@]}")
[[ -z "$leaks" ]] || fail "the host sees task mounts during the step: $leaks"

touch go
rc=0; wait $srun_pid || rc=$?
trap cleanup EXIT
[[ $rc -eq 0 ]] || { cat step.out >&2; fail "srun exited $rc"; }
leaks=$(host_mounts_at "${watched[@]}")
[[ -z "$leaks" ]] || fail "the host sees task mounts after the step: $leaks"
echo "PASS: the tasks' mounts never showed in the host's mount table"
