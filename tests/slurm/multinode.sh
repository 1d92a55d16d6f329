#!/usr/bin/env bash
# Multi-node test on a real Slurm cluster of 4 emulated nodes: network + UTS
# namespaces node0..node3 (benchmarks/netem/nodes.sh, prefix fstest, 10.78.0.0/24), munged in
# the root namespace, slurmctld in node0, one slurmd per node. `srun --mpi=pmix -N 4 -n 8`
# trains with sparse-hier pinned; the run must see 4 real nodes of 2 ranks and end with the
# model (and the non-timing metrics) of a one-node mpirun with FEDSILO_EMULATED_NODES=4, bitwise.
#
# Env: FEDSILO_BIN, FEDSILO_SOURCE_DIR, FEDSILO_TEST_DIR (scratch; logs stay there). Exit 77 =
# skipped (not root, Slurm or network namespaces missing). Its own ports (18817/18818) and
# names, so it runs beside the single-node test cluster; two runs of it on one machine take
# turns (a lock in /run). Everything is torn down on exit, also on failure; every wait is bounded.
# Facts behind the settings: docs/environment.md ("Several emulated nodes").
set -euo pipefail
: "${FEDSILO_BIN:?}" "${FEDSILO_SOURCE_DIR:?}" "${FEDSILO_TEST_DIR:?}"

nodes=4
ranks=8
ctld_port=${FEDSILO_MULTINODE_CTLD_PORT:-18817}
slurmd_port=${FEDSILO_MULTINODE_SLURMD_PORT:-18818}
lock=/run/fedsilo-fstest.lock
run_start=$SECONDS

# Our cluster only: no job, step or cluster of an outer Slurm environment leaks into srun.
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done
# lib.sh's helpers (fail, skip, wait_for, same_params, test_partition, fresh_test_dir) with this
# cluster's config as SLURM_CONF; its require_cluster is for the single-node cluster, not used.
export SLURM_CONF=/run/fstest/slurm/slurm.conf
source "${FEDSILO_SOURCE_DIR}/tests/slurm/lib.sh"
source "${FEDSILO_SOURCE_DIR}/benchmarks/netem/nodes.sh"
nodes_init fstest 10.78.0 "$nodes"
# The cluster's files, removed with the nodes. A short path for everything that holds a socket
# (munge, slurmd spool, PMIx's TmpFS): unix socket paths are limited to 107 bytes, build
# directories are not. Logs go to FEDSILO_TEST_DIR/log and stay.
cdir=${nodes_state}/slurm

say() { printf '[multinode %3ds] %s\n' "$((SECONDS - run_start))" "$*"; }

# ---- can it run here?
[[ $(id -u) -eq 0 ]] || skip "the multi-node Slurm test needs root (network namespaces, slurmd)"
for t in slurmctld slurmd munged srun sinfo scontrol; do
  command -v "$t" >/dev/null || skip "$t not installed (scripts/install-deps.sh installs Slurm)"
done
for t in ip nsenter unshare flock; do
  command -v "$t" >/dev/null || skip "$t not installed (iproute2, util-linux)"
done
unshare --net --uts true 2>/dev/null || skip "no network/UTS namespaces here (unshare --net --uts failed)"
[[ -e /usr/lib/x86_64-linux-gnu/libpmix.so || -n "$(ldconfig -p 2>/dev/null | grep 'libpmix\.so ')" ]] ||
  skip "libpmix.so missing (libpmix-dev): Slurm's pmix plugin cannot load"
for t in mpirun h5diff; do command -v "$t" >/dev/null || fail "$t not found"; done
[[ -x "$FEDSILO_BIN" ]] || fail "FEDSILO_BIN=$FEDSILO_BIN is not executable"

# ---- one run at a time on this machine (the namespace names are fixed). The daemons are
# started without the lock's descriptor, so ones left by a killed run do not hold it.
exec {lock_fd}>"$lock"
if ! flock -n "$lock_fd"; then
  say "another multi-node test holds $lock; waiting (at most 120 s)"
  flock -w 120 "$lock_fd" || fail "another multi-node test held $lock for 120 s"
fi

# Never fails (also under set -e): whatever is already gone is skipped.
stop_cluster() {
  local -
  set +e
  local pidfile pid
  # slurmd and slurmctld run inside the nodes: nodes_down ends them (and any job step left)
  # after this polite TERM; munged runs in the root namespace, ended here by its pid file.
  for pidfile in "$cdir"/slurmd-node*.pid "$cdir/slurmctld.pid"; do
    [[ -s "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null
  done
  for pidfile in "$cdir"/slurmd-node*.pid "$cdir/slurmctld.pid"; do
    [[ -s "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  pidfile="$cdir/munge/munged.pid"
  if [[ -s "$pidfile" ]]; then
    pid=$(cat "$pidfile")
    # Only our munged: its command line names our socket.
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$cdir/munge/munge.socket"; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  return 0
}

teardown() {
  local rc=$?
  set +e
  trap '' INT TERM HUP   # a second signal (ctest, Ctrl-C) must not cut the teardown short
  if [[ $rc -ne 0 && $rc -ne 77 && -d "$FEDSILO_TEST_DIR/log" ]]; then
    echo "--- last lines of the daemon logs ($FEDSILO_TEST_DIR/log):" >&2
    tail -n 15 "$FEDSILO_TEST_DIR"/log/*.log "$cdir/munge/munged.log" >&2 2>/dev/null
  fi
  stop_cluster
  nodes_down
  say "torn down (exit $rc)"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

# A run killed without its trap (ctest's timeout) leaves ours behind: we hold the lock, so
# whatever carries our names is stale.
if nodes_exists || [[ -d "$cdir" ]]; then
  say "removing a stale emulated cluster of an interrupted run"
  stop_cluster
  nodes_down
fi

fresh_test_dir
mkdir -p "$FEDSILO_TEST_DIR"/{log,ref,ref2,multi}
data=$(test_partition "$ranks")

# The same config file for both runs, relative out_dir: each run writes under its own working
# directory, and the config (whose hash is in the model) is identical.
config="$FEDSILO_TEST_DIR/multinode.toml"
cat > "$config" <<EOF
[run]
name = "multinode"
seed = 7
rounds = 3
out_dir = "out"
checkpoint_every = 10

[data]
silos_dir = "$data"

[model]
arch = "mlp"
hidden = [32]

[local]
epochs = 1
batch_size = 32
lr = 0.05
momentum = 0.9
threads = 1

[strategy]
name = "fedavg"

[compression]
method = "topk"
density = 0.05
level = "node"

[allreduce]
algorithm = "sparse-hier"
EOF

# Both launches: shared memory and TCP only, ranks yield the CPU while waiting (8 ranks on 2
# cores), no single-copy mechanism (needs ptrace rights containers often lack).
export OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_mpi_yield_when_idle=1
unset FEDSILO_EMULATED_NODES

# ---- reference: one node, emulated as 4 (root namespace, plain mpirun)
say "reference run: mpirun -np $ranks, FEDSILO_EMULATED_NODES=$nodes"
(cd "$FEDSILO_TEST_DIR/ref" &&
  FEDSILO_EMULATED_NODES=$nodes timeout -k 10 90 \
    mpirun --oversubscribe --allow-run-as-root -np "$ranks" "$FEDSILO_BIN" train "$config") \
  > "$FEDSILO_TEST_DIR/ref.log" 2>&1 || { cat "$FEDSILO_TEST_DIR/ref.log" >&2; fail "the reference run failed"; }
grep -qF "$ranks silos on $nodes nodes x 2 ranks (emulated)," "$FEDSILO_TEST_DIR/ref.log" ||
  { cat "$FEDSILO_TEST_DIR/ref.log" >&2; fail "the reference run did not report 4 emulated nodes x 2 ranks"; }

# The comparison can tell topologies apart: node-level top-k of another grouping (2 nodes of 4)
# gives another model.
(cd "$FEDSILO_TEST_DIR/ref2" &&
  FEDSILO_EMULATED_NODES=2 timeout -k 10 90 \
    mpirun --oversubscribe --allow-run-as-root -np "$ranks" "$FEDSILO_BIN" train -q "$config") \
  > "$FEDSILO_TEST_DIR/ref2.log" 2>&1 || { cat "$FEDSILO_TEST_DIR/ref2.log" >&2; fail "the 2-node reference run failed"; }
if h5diff -q "$FEDSILO_TEST_DIR/ref/out/model.h5" "$FEDSILO_TEST_DIR/ref2/out/model.h5" /params /params \
  >/dev/null 2>&1; then
  fail "4 and 2 emulated nodes gave the same model: the comparison would not see the topology"
fi

# ---- the cluster
say "building $nodes emulated nodes (fstest-node0..$((nodes - 1)), ${nodes_subnet}.0/24)"
nodes_up none
for ((i = 0; i < nodes; i++)); do
  [[ "$(nodes_exec "$i" hostname)" == "node$i" ]] || fail "node$i does not have its host name"
done

mkdir -p "$cdir"/{state,spool,munge}
for ((i = 0; i < nodes; i++)); do mkdir -p "$cdir/tmp/node$i" "$cdir/spool/node$i"; done
chmod 755 "$cdir" "$cdir/tmp" "$cdir"/tmp/node*
# munged in the root namespace; its socket is a file, reachable from every node. The socket
# directory must be mode 711 (munged refuses a more open one, clients need to traverse it).
chown munge:munge "$cdir/munge"
chmod 711 "$cdir/munge"
runuser -u munge -- munged --socket="$cdir/munge/munge.socket" --pid-file="$cdir/munge/munged.pid" \
  --log-file="$cdir/munge/munged.log" --seed-file="$cdir/munge/munged.seed" --force {lock_fd}>&-
wait_for 10 test -S "$cdir/munge/munge.socket" || fail "munged did not start"

{
  cat <<EOF
# Written by tests/slurm/multinode.sh: 4 emulated nodes in network namespaces.
ClusterName=fedsilo-multinode
SlurmctldHost=node0($(nodes_ip 0))
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
Include ${FEDSILO_SOURCE_DIR}/tests/slurm/common.conf
AuthInfo=socket=$cdir/munge/munge.socket,cred_expire=10
StateSaveLocation=$cdir/state
SlurmdSpoolDir=$cdir/spool/%n
SlurmctldPidFile=$cdir/slurmctld.pid
SlurmdPidFile=$cdir/slurmd-%n.pid
SlurmctldLogFile=$FEDSILO_TEST_DIR/log/slurmctld.log
SlurmdLogFile=$FEDSILO_TEST_DIR/log/slurmd-%n.log
SlurmdDebug=info
TmpFS=$cdir/tmp/%n
PlugStackConfig=$cdir/plugstack.conf
EOF
  # The nodes share the machine's /tmp: each has its own TmpFS (PMIx makes its directories
  # there). CPUs=2 each, so `-N 4 -n 8` places exactly 2 tasks per node.
  # The machine's memory shared out (jobs request --mem-per-cpu).
  mem_mib=$(awk -v n="$nodes" '/^MemTotal:/ {print int($2 / 1024 / n)}' /proc/meminfo)
  for ((i = 0; i < nodes; i++)); do
    echo "NodeName=node$i NodeAddr=$(nodes_ip "$i") CPUs=2 RealMemory=$mem_mib State=UNKNOWN"
  done
  echo "PartitionName=test Nodes=node[0-$((nodes - 1))] Default=YES MaxTime=INFINITE State=UP"
} > "$SLURM_CONF"
: > "$cdir/plugstack.conf"   # no SPANK plugins (not the system's plugstack.conf either)
# `ip netns exec` mounts a fresh /sys for the node, without /sys/fs/cgroup, where slurmd's
# cgroup autodetection fails ("No filesystem mounted on /sys/fs/cgroup"); with proctrack/linuxproc
# and task/none nothing uses cgroups, so name the v1 plugin instead of detecting one.
echo "CgroupPlugin=cgroup/v1" > "$cdir/cgroup.conf"

in_node0() { nodes_exec 0 env SLURM_CONF="$SLURM_CONF" "$@"; }

say "starting slurmctld in node0 and slurmd in node0..$((nodes - 1))"
in_node0 slurmctld -i -f "$SLURM_CONF" {lock_fd}>&- || fail "slurmctld did not start"
for ((i = 0; i < nodes; i++)); do
  nodes_exec "$i" slurmd -f "$SLURM_CONF" {lock_fd}>&- || fail "slurmd did not start in node$i"
done
all_idle() {
  [[ "$(in_node0 sinfo -h -N -o '%N %T' 2>/dev/null | sort | tr '\n' ' ')" == \
     "node0 idle node1 idle node2 idle node3 idle " ]]
}
wait_for 60 all_idle || {
  in_node0 sinfo -N >&2 || true
  fail "the 4 nodes were not idle within 60 s"
}
say "cluster up: $(in_node0 sinfo -h -o '%D nodes %T' | tr '\n' ' ')"

# ---- where srun puts the tasks: 2 on each node, in blocks (what emulated_nodes assumes)
layout=$(in_node0 timeout -k 5 60 srun --mpi=none -N "$nodes" -n "$ranks" --immediate=30 --time=1 \
  --label hostname 2>&1 | sort -n | tr '\n' ' ') || true
expected=""
for ((r = 0; r < ranks; r++)); do expected+="$r: node$((r / 2)) "; done
[[ "$layout" == "$expected" ]] || fail "srun -N $nodes -n $ranks placed tasks as '$layout', expected '$expected'"
say "srun layout: $layout"

# ---- the federation across the nodes
say "multi-node run: srun --mpi=pmix -N $nodes -n $ranks"
# (In a subshell: a signal's trap must not run with the shell's output redirected to the log.)
(in_node0 timeout -k 10 150 srun --mpi=pmix -N "$nodes" -n "$ranks" --immediate=30 --time=4 \
  --kill-on-bad-exit=1 --chdir="$FEDSILO_TEST_DIR/multi" "$FEDSILO_BIN" train "$config") \
  > "$FEDSILO_TEST_DIR/multi.log" 2>&1 || { cat "$FEDSILO_TEST_DIR/multi.log" >&2; fail "the multi-node run failed"; }
cat "$FEDSILO_TEST_DIR/multi.log"

# ---- assertions
# The topology of the real nodes: 4 nodes x 2 ranks, not emulated.
# (rank 0's banner: "8 silos on 4 nodes x 2 ranks, mlp ...", where the reference's says
# "... 2 ranks (emulated), ...").
grep -qF "$ranks silos on $nodes nodes x 2 ranks, " "$FEDSILO_TEST_DIR/multi.log" ||
  fail "the multi-node run did not see $nodes (real) nodes x 2 ranks"
for d in ref multi; do
  [[ -f "$FEDSILO_TEST_DIR/$d/out/model.h5" ]] || fail "$d wrote no model"
done
same_params "$FEDSILO_TEST_DIR/ref/out/model.h5" "$FEDSILO_TEST_DIR/multi/out/model.h5"
# Every non-timing metric too, the intra- and inter-node byte counts included.
strip_times() {  # metrics.jsonl without the "seconds" object (which nests by_rank)
  python3 -c 'import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l); j.pop("seconds", None); print(json.dumps(j, sort_keys=True))' "$1"
}
diff <(strip_times "$FEDSILO_TEST_DIR/ref/out/metrics.jsonl") \
     <(strip_times "$FEDSILO_TEST_DIR/multi/out/metrics.jsonl") >&2 ||
  fail "metrics of the reference and the multi-node run differ (timings aside)"
inter=$(grep -o '"inter_sent":[0-9]*' "$FEDSILO_TEST_DIR/multi/out/metrics.jsonl" | tail -n 1 | cut -d: -f2)
[[ "${inter:-0}" -gt 0 ]] || fail "no inter-node bytes in the multi-node run's metrics"
[[ "$(grep -c . "$FEDSILO_TEST_DIR/multi/out/metrics.jsonl")" -eq 3 ]] || fail "expected 3 rounds of metrics"

say "PASS: 8 ranks on 4 nodes x 2 (srun -N 4 -n 8, sparse-hier): model and metrics equal the" \
    "one-node run with 4 emulated nodes, bitwise (inter-node bytes sent in the last round: $inter)"
