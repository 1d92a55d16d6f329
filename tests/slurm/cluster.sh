#!/usr/bin/env bash
# A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd, all state in one
# scratch directory, the fedsilo SPANK plugin configured when given. Needs root and the Debian
# packages slurmctld, slurmd, slurm-client, munge (scripts/install-deps.sh installs them).
#
#   cluster.sh start DIR [PLUGIN.so]   writes DIR/slurm.conf, starts the daemons, waits (bounded)
#                                      until the node is idle; prints SLURM_CONF=DIR/slurm.conf
#   cluster.sh stop DIR                stops what `start DIR` started (also a half-started cluster)
#   cluster.sh status DIR              exit 0 when the cluster of DIR answers
#
# The SPANK plugin, when given, sees its paths in DIR: data_path=DIR/mnt/data,
# state_path=DIR/mnt/state. Facts behind the settings: docs/environment.md.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
plugin=${3:-}
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ -n "$cmd" && -n "$dir" ]] || usage
[[ $(id -u) -eq 0 ]] || { echo "cluster.sh: needs root (slurmd, munged)" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf="$dir/slurm.conf"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SLURM_CONF="$conf"

# Ports of our own, so a cluster of the system (if any) is not disturbed.
ctld_port=${FEDSILO_SLURMCTLD_PORT:-16817}
slurmd_port=${FEDSILO_SLURMD_PORT:-16818}

stop() {
  set +e
  for d in slurmd slurmctld; do
    local pidfile="$dir/$d.pid"
    if [[ -s "$pidfile" ]]; then
      local pid; pid=$(cat "$pidfile")
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
      rm -f "$pidfile"
    fi
  done
  # Job steps of this cluster that outlived their slurmd.
  pkill -KILL -f "slurmstepd.*$dir" 2>/dev/null
  if [[ -s "$dir/munged.pid" ]]; then
    kill -TERM "$(cat "$dir/munged.pid")" 2>/dev/null
    rm -f "$dir/munged.pid"
  fi
  return 0
}

case "$cmd" in
  stop) stop; exit 0 ;;
  status) scontrol ping >/dev/null 2>&1 && sinfo -h -o %T | grep -q idle; exit $? ;;
  start) ;;
  *) usage ;;
esac

for tool in slurmctld slurmd munged scontrol sinfo; do
  command -v "$tool" >/dev/null || { echo "cluster.sh: $tool not found (run scripts/install-deps.sh)" >&2; exit 2; }
done
trap 'rc=$?; if [[ $rc -ne 0 ]]; then stop; fi' EXIT
stop  # a leftover of an earlier, interrupted run in the same directory

mkdir -p "$dir"/{state,spool,log,tmp,mnt/data,mnt/state}
chmod 755 "$dir" "$dir/tmp"

# munge: its own daemon and socket in DIR, the key Debian's package made.
mkdir -p "$dir/munge"
chown munge:munge "$dir/munge"
chmod 711 "$dir/munge"
runuser -u munge -- munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --force
for _ in $(seq 1 50); do [[ -s "$dir/munge/munged.pid" ]] && break; sleep 0.1; done
cp "$dir/munge/munged.pid" "$dir/munged.pid"

host=$(hostname -s)
cpus=${FEDSILO_SLURM_CPUS:-16}
# The node's memory as Slurm sees it (jobs request --mem-per-cpu; without RealMemory a node has 1 MiB).
mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
cat > "$conf" <<EOF
# Written by tests/slurm/cluster.sh: a single-node test cluster.
ClusterName=fedsilo-test
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
Include $here/common.conf
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmdDebug=info
TmpFS=$dir/tmp
PlugStackConfig=$dir/plugstack.conf
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
if [[ -n "$plugin" ]]; then
  [[ -f "$plugin" ]] || { echo "cluster.sh: SPANK plugin $plugin not found" >&2; exit 2; }
  echo "required $plugin data_path=$dir/mnt/data state_path=$dir/mnt/state" > "$dir/plugstack.conf"
else
  : > "$dir/plugstack.conf"
fi

slurmctld -i -f "$conf"
slurmd -f "$conf"

# The node is idle in well under a second here; allow 30 s on a loaded machine.
for _ in $(seq 1 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    echo "SLURM_CONF=$conf"
    exit 0
  fi
  sleep 0.1
done
echo "cluster.sh: the node did not become idle in 30 s; logs in $dir/log:" >&2
tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
