# Helpers of the SPANK plugin tests (test_spank_*.sh), sourced after lib.sh: silos on disk, a
# manifest, bounded srun runs as root or as the unprivileged user fedsilo-ci, and a task script
# that reports what a task can see, checked line by line.

CI_USER=fedsilo-ci
CI_GROUP=fedsilo-ci-sup   # a supplementary group of fedsilo-ci, for @group entries

# require_spank: the cluster answers and runs the plugin; sets DATA_PATH and STATE_PATH, the
# mount points its plugstack.conf line gives.
require_spank() {
  require_cluster
  [[ -n "${FEDSILO_SPANK_SO:-}" ]] || skip "the SPANK plugin was not built (slurm/spank.h not found)"
  local plugstack
  plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
  grep -q spank_fedsilo "$plugstack" 2>/dev/null || fail "$plugstack does not load spank_fedsilo"
  DATA_PATH=$(sed -n 's/.*[[:space:]]data_path=\([^[:space:]]*\).*/\1/p' "$plugstack")
  STATE_PATH=$(sed -n 's/.*[[:space:]]state_path=\([^[:space:]]*\).*/\1/p' "$plugstack")
  [[ -n "$DATA_PATH" && -n "$STATE_PATH" ]] || fail "$plugstack sets no data_path/state_path"
  # The plugin mounts at, and reports, the canonical paths.
  DATA_PATH=$(realpath -m "$DATA_PATH")
  STATE_PATH=$(realpath -m "$STATE_PATH")
}

# ensure_ci_user: the unprivileged user fedsilo-ci (member of fedsilo-ci-sup) exists and can
# reach the test directory. Tests may run in parallel: one creates, the others wait.
ensure_ci_user() {
  (
    flock -w 60 9 || fail "could not lock the creation of $CI_USER"
    getent group "$CI_GROUP" >/dev/null || groupadd --system "$CI_GROUP"
    id "$CI_USER" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$CI_USER"
    id -nG "$CI_USER" | tr ' ' '\n' | grep -qx "$CI_GROUP" || usermod -aG "$CI_GROUP" "$CI_USER"
  ) 9>"$FEDSILO_TEST_DIR/../.fedsilo-ci-user.lock"
  runuser -u "$CI_USER" -- test -x "$FEDSILO_TEST_DIR" ||
    skip "$CI_USER cannot reach $FEDSILO_TEST_DIR (a parent directory is not world-searchable)"
}

# make_silo NAME: SILOS/NAME/data (root's, read-only for others, with a file `id`) and
# SILOS/NAME/state (writable by fedsilo-ci, with a file `keep`).
make_silo() {
  local d="$SILOS/$1"
  mkdir -p "$d/data" "$d/state"
  echo "data of $1" > "$d/data/id"
  echo "state of $1" > "$d/state/keep"
  chmod 755 "$SILOS" "$d" "$d/data" "$d/state"
  chmod 644 "$d/data/id" "$d/state/keep"
  if id "$CI_USER" >/dev/null 2>&1; then chown "$CI_USER" "$d/state"; fi
}

# manifest_line NAME ALLOWED: a manifest line for a silo made by make_silo.
manifest_line() { echo "$1 $SILOS/$1/data $SILOS/$1/state $2"; }

# srun_to FILE ARGS...: srun as root with time bounds, stdout and stderr to FILE; srun's status.
srun_to() {
  local out=$1; shift
  timeout 60 srun --immediate=30 "$@" > "$out" 2>&1
}

# srun_as_ci_to FILE ARGS...: the same as fedsilo-ci (SLURM_CONF passed through).
srun_as_ci_to() {
  local out=$1; shift
  timeout 60 runuser -u "$CI_USER" -- env SLURM_CONF="$SLURM_CONF" \
    srun --immediate=30 "$@" > "$out" 2>&1
}

# write_task_script FILE: the task of the isolation checks. Task i is silo s<i> of NSILOS silos
# under SILOS; it writes "what=result" lines to RESULTS/task.<i>.
write_task_script() {
  cat > "$1" <<'EOF'
#!/bin/bash
# One task of a SPANK plugin test: reports what it can see and do, one "what=result" a line.
me=$SLURM_PROCID
readable() { if cat "$1" > /dev/null 2>&1; then echo readable; else echo refused; fi; }
listing() {
  local l
  if l=$(ls -A "$1" 2> /dev/null); then
    if [[ -z "$l" ]]; then echo empty; else echo listed; fi
  else
    echo refused
  fi
}
{
  echo "silo=${FEDSILO_SILO:-unset}"
  echo "data_dir=${FEDSILO_DATA_DIR:-unset}"
  echo "state_dir=${FEDSILO_STATE_DIR:-unset}"
  if [[ -n "${FEDSILO_DATA_DIR:-}" ]]; then
    echo "own_data=$(cat "$FEDSILO_DATA_DIR/id" 2>&1)"
    if echo "written by task $me" > "$FEDSILO_STATE_DIR/out.$me" 2> /dev/null; then
      echo state_write=ok
    else
      echo state_write=refused
    fi
    if touch "$FEDSILO_DATA_DIR/new.$me" 2> /dev/null; then echo data_write=ok; else echo data_write=refused; fi
  fi
  echo "data_path_mounts=$(awk -v p="$DATA_PATH" '$5 == p' /proc/self/mountinfo | wc -l)"
  for ((j = 0; j < NSILOS; j++)); do
    [[ $j -eq $me ]] && continue
    echo "other_data_read.s$j=$(readable "$SILOS/s$j/data/id")"
    echo "other_data_list.s$j=$(listing "$SILOS/s$j/data")"
    echo "other_state_read.s$j=$(readable "$SILOS/s$j/state/keep")"
    echo "other_state_list.s$j=$(listing "$SILOS/s$j/state")"
  done
  echo "outside=$(cat "$OUTSIDE" 2>&1)"
} > "$RESULTS/task.$me"
EOF
  chmod 755 "$1"
}

# prepare_task_run: RESULTS (writable by anyone) and OUTSIDE (a file outside the manifest),
# exported with what the task script needs.
prepare_task_run() {
  export RESULTS="$FEDSILO_TEST_DIR/results" OUTSIDE="$FEDSILO_TEST_DIR/outside.txt"
  export SILOS NSILOS DATA_PATH
  rm -rf "$RESULTS"; mkdir -p "$RESULTS"; chmod 1777 "$RESULTS"
  echo "shared, outside the manifest" > "$OUTSIDE"; chmod 644 "$OUTSIDE"
}

# expect TASK WHAT VALUE: the task reported WHAT=VALUE.
expect() {
  local file="$RESULTS/task.$1" got
  [[ -f "$file" ]] || fail "task $1 wrote no results (it did not run?)"
  got=$(sed -n "s/^$2=//p" "$file")
  [[ "$got" == "$3" ]] || { cat "$file" >&2; fail "task $1: $2 is '$got', expected '$3'"; }
}

# check_isolated TASK USER: what task TASK (silo s<TASK>) must see under the plugin; USER is
# root or ci (as fedsilo-ci, listing another silo's directory must be refused; root may list
# the empty cover, which shows nothing).
check_isolated() {
  local i=$1 who=$2 j list
  expect "$i" silo "s$i"
  expect "$i" data_dir "$DATA_PATH"
  expect "$i" state_dir "$STATE_PATH"
  expect "$i" own_data "data of s$i"
  expect "$i" state_write ok
  grep -qx "written by task $i" "$SILOS/s$i/state/out.$i" 2>/dev/null ||
    fail "task $i's write to \$FEDSILO_STATE_DIR did not land in $SILOS/s$i/state"
  expect "$i" data_write refused
  [[ ! -e "$SILOS/s$i/data/new.$i" ]] || fail "task $i wrote into its DATA_DIR"
  expect "$i" data_path_mounts 1
  for ((j = 0; j < NSILOS; j++)); do
    [[ $j -eq $i ]] && continue
    [[ ! -e "$SILOS/s$j/state/out.$i" ]] || fail "task $i's state write landed in silo s$j's STATE_DIR"
    expect "$i" "other_data_read.s$j" refused
    expect "$i" "other_state_read.s$j" refused
    for list in data state; do
      if [[ $who == ci ]]; then
        expect "$i" "other_${list}_list.s$j" refused
      else
        local got; got=$(sed -n "s/^other_${list}_list.s$j=//p" "$RESULTS/task.$i")
        [[ "$got" == refused || "$got" == empty ]] ||
          fail "task $i listed silo s$j's $list directory ($got)"
      fi
    done
  done
  expect "$i" outside "shared, outside the manifest"
}

# host_mounts_at PATH...: the host's mounts (this shell's namespace) at or below any PATH.
host_mounts_at() {
  local p
  for p in "$@"; do
    awk -v p="$p" '$5 == p || index($5, p "/") == 1' /proc/self/mountinfo
  done
}
