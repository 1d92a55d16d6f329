#!/usr/bin/env bash
# SPANK plugin: steps it must refuse. Each case runs twice: as users normally do (srun checks
# first and refuses to launch), and with srun's check switched off (a client plugstack.conf with
# srun_check=no, as a user could write), where slurmstepd's check must refuse the step itself.
# Either way: srun exits non-zero, its output holds the one message naming what is wrong,
# exactly once, and no task ran (each would have left a marker file).
#
#   test_spank_errors.sh malformed    a line with 3 fields: MANIFEST:3
#   test_spank_errors.sh missing_dir  a DATA_DIR that does not exist
#   test_spank_errors.sh duplicate    a silo name twice
#   test_spank_errors.sh task_count   -n 3 for 2 silos
#   test_spank_errors.sh not_allowed  fedsilo-ci runs a silo that allows root and @root only
#   test_spank_errors.sh unreachable  fedsilo-ci names a DATA_DIR below a directory it cannot
#                                     enter (the plugin must not mount it for them as root)
#   test_spank_errors.sh plugstack    a bad plugstack.conf argument (srun side)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
case=${1:?usage: test_spank_errors.sh malformed|missing_dir|duplicate|task_count|not_allowed|unreachable|plugstack}
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
ensure_ci_user

SILOS="$FEDSILO_TEST_DIR/silos"
make_silo s0
make_silo s1
m="$FEDSILO_TEST_DIR/manifest.txt"
task="touch $FEDSILO_TEST_DIR/ran.\$SLURM_PROCID"
chmod 777 "$FEDSILO_TEST_DIR"   # the markers of fedsilo-ci's tasks
who=root ntasks=2 allowed=root

case "$case" in
malformed)
  { echo "# name data state allowed"; manifest_line s0 root; echo "s1 $SILOS/s1/data root"; } > "$m"
  msg="$m:3: expected 4 fields (NAME DATA_DIR STATE_DIR ALLOWED), found 3" ;;
missing_dir)
  { echo "# name data state allowed"; manifest_line s0 root
    echo "s1 $SILOS/nowhere $SILOS/s1/state root"; } > "$m"
  msg="$m:3: silo 's1': DATA_DIR $SILOS/nowhere does not exist" ;;
duplicate)
  { echo "# name data state allowed"; manifest_line s0 root
    echo "s0 $SILOS/s1/data $SILOS/s1/state root"; } > "$m"
  msg="$m:3: duplicate silo name 's0' (first on line 2)" ;;
task_count)
  { manifest_line s0 root; manifest_line s1 root; } > "$m"
  ntasks=3
  msg="the step has 3 tasks but manifest $m lists 2 silos (task i runs silo i): use -n 2" ;;
not_allowed)
  { echo "# name data state allowed"; manifest_line s0 "root,$CI_USER"; manifest_line s1 "root,@root"; } > "$m"
  who=ci allowed="root,$CI_USER"
  msg="$m:3: user '$CI_USER' may not run silo 's1' (ALLOWED: root,@root)" ;;
unreachable)
  mkdir -p "$FEDSILO_TEST_DIR/closed/s1data"
  chmod 700 "$FEDSILO_TEST_DIR/closed"
  { echo "# name data state allowed"; manifest_line s0 "$CI_USER"
    echo "s1 $FEDSILO_TEST_DIR/closed/s1data $SILOS/s1/state $CI_USER"; } > "$m"
  who=ci allowed=$CI_USER
  msg="$m:3: silo 's1': user '$CI_USER' cannot reach DATA_DIR $FEDSILO_TEST_DIR/closed/s1data: Permission denied" ;;
plugstack) ;;
*) fail "unknown case $case" ;;
esac
[[ $case == plugstack ]] || chmod 644 "$m"

# run_step CONF OUT [SRUN ARGS...]: srun the marker task as $who with SLURM_CONF=CONF.
run_step() {
  local conf=$1 out=$2; shift 2
  if [[ $who == ci ]]; then
    SLURM_CONF=$conf srun_as_ci_to "$out" "$@" bash -c "$task"
  else
    SLURM_CONF=$conf srun_to "$out" "$@" bash -c "$task"
  fi
}

# client_conf NAME PLUGSTACK_LINE: a copy of the cluster's slurm.conf for srun only, whose
# PlugStackConfig holds the given line. slurmd and slurmstepd keep the cluster's own.
client_conf() {
  echo "$2" > "$FEDSILO_TEST_DIR/$1-plugstack.conf"
  sed "s|^PlugStackConfig=.*|PlugStackConfig=$FEDSILO_TEST_DIR/$1-plugstack.conf|" "$SLURM_CONF" \
    > "$FEDSILO_TEST_DIR/$1.conf"
  chmod 644 "$FEDSILO_TEST_DIR/$1-plugstack.conf" "$FEDSILO_TEST_DIR/$1.conf"
  echo "$FEDSILO_TEST_DIR/$1.conf"
}

# refused WHERE CONF [SRUN ARGS...]: the step fails with the message, printed once by WHERE
# ("srun" or "slurmstepd"), and no task ran.
refused() {
  local where=$1 conf=$2 out="$FEDSILO_TEST_DIR/$1.out" rc=0 n; shift 2
  rm -f "$FEDSILO_TEST_DIR"/ran.*
  run_step "$conf" "$out" "$@" || rc=$?
  [[ $rc -ne 124 ]] || { cat "$out" >&2; fail "$case/$where: srun timed out"; }
  [[ $rc -ne 0 ]] || { cat "$out" >&2; fail "$case/$where: srun exited 0"; }
  n=$(grep -cF -- "$msg" "$out" || true)
  [[ $n -eq 1 ]] || { cat "$out" >&2; fail "$case/$where: the message '$msg' appears $n times, expected once"; }
  grep -F -- "$msg" "$out" | grep -q "^$where" ||
    { cat "$out" >&2; fail "$case/$where: the message did not come from $where"; }
  ! compgen -G "$FEDSILO_TEST_DIR/ran.*" > /dev/null || fail "$case/$where: a task ran: $(ls "$FEDSILO_TEST_DIR"/ran.*)"
  echo "$case/$where: refused (rc $rc): $(grep -F -- "$msg" "$out")"
}

plugin_line=$(grep spank_fedsilo "$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")")

if [[ $case == plugstack ]]; then
  # A relative data_path: srun itself refuses to start, even without the option.
  bad=$(client_conf bad "${plugin_line/data_path=/data_path=relative}")
  msg="spank_fedsilo: plugstack.conf: data_path must be an absolute path, got 'relative"
  refused srun "$bad" -n 1
  msg="spank_fedsilo: plugstack.conf: unknown argument 'colour=blue'"
  bad=$(client_conf bad "$plugin_line colour=blue")
  refused srun "$bad" -n 1
  echo "PASS: $case"
  exit 0
fi

# Control: a well-formed manifest of the same silos and user runs, and the markers appear.
good="$FEDSILO_TEST_DIR/good.txt"
{ manifest_line s0 "$allowed"; manifest_line s1 "$allowed"; } > "$good"; chmod 644 "$good"
rm -f "$FEDSILO_TEST_DIR"/ran.*
rc=0; run_step "$SLURM_CONF" control.out -n 2 --fedsilo-silos="$good" || rc=$?
[[ $rc -eq 0 && -e "$FEDSILO_TEST_DIR/ran.0" && -e "$FEDSILO_TEST_DIR/ran.1" ]] ||
  { cat control.out >&2; fail "control: the good manifest did not run (rc $rc)"; }

refused srun "$SLURM_CONF" -n "$ntasks" --fedsilo-silos="$m"
nocheck=$(client_conf nocheck "$plugin_line srun_check=no")
refused slurmstepd "$nocheck" -n "$ntasks" --fedsilo-silos="$m"
echo "PASS: $case"
