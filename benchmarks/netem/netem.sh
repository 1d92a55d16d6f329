#!/usr/bin/env bash
# An emulated cluster on one machine: K nodes as network + UTS namespaces (host names
# node0..nodeK-1) on veth links to a bridge in a hub namespace (10.77.0.0/24, private), each
# link rate-limited with tc tbf on both ends; runs COMMAND inside node0 with what Open MPI
# needs to launch across the nodes, reads the links' byte counters before and after, and tears
# everything down on exit, also on failure or Ctrl-C. Needs root, iproute2, util-linux.
#
#   netem.sh [--nodes K] [--rate 1gbit|10gbit|none] [--counters FILE.json] -- COMMAND...
#
# COMMAND runs under `sh -c` in node0 (hostname node0) with these variables set:
#   NETEM_HOSTFILE  hostfile: node0 slots=S ... (S = --slots)
#   NETEM_MPIRUN    mpirun plus the options that launch across the nodes: rsh agent = this
#                   directory's agent.sh, TCP between nodes on eth0 only, shared memory inside
#   NETEM_IF        the node side of each link (eth0 in every node)
#   NETEM_NODES     K
# Facts behind the numbers (../../../shared/ENVIRONMENT.md): 1gbit with burst 256kb measured
# 0.96 Gbit/s, 10gbit with burst 2mb 9.6 Gbit/s (a 64kb burst under-delivers at 10gbit); this
# kernel has no netem, so no added delay (node-to-node round trip ~0.07 ms).
set -euo pipefail

nodes=4
rate=1gbit
slots=2
counters=""
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --slots) slots="$2"; shift 2 ;;
    --counters) counters="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "netem.sh: unknown option $1" >&2; usage ;;
  esac
done
[[ $# -gt 0 ]] || usage
[[ $(id -u) -eq 0 ]] || { echo "netem.sh: needs root (network namespaces)" >&2; exit 2; }
[[ "$nodes" =~ ^[0-9]+$ && "$nodes" -ge 1 && "$nodes" -le 200 ]] || {
  echo "netem.sh: --nodes 1..200" >&2; exit 2; }
case "$rate" in
  1gbit) burst=256kb ;;
  10gbit) burst=2mb ;;
  none) burst="" ;;
  *) echo "netem.sh: --rate 1gbit, 10gbit or none" >&2; exit 2 ;;
esac

# Everything this script creates carries the fsbench prefix; nothing else is touched.
prefix=fsbench
hub="${prefix}-hub"
state=/run/${prefix}         # UTS namespace files, hostfile, agent map
subnet=10.77.0
ns_of() { echo "${prefix}-node$1"; }
ip_of() { echo "${subnet}.$((10 + $1))"; }

if ip netns list | grep -q "^${hub}\b"; then
  echo "netem.sh: ${hub} exists: another emulated cluster is running (or a stale one:" \
       "delete it with 'ip netns del'; this script cleans up after itself)" >&2
  exit 2
fi

teardown() {
  local rc=$?
  set +e
  for ((i = 0; i < nodes; i++)); do
    local ns; ns=$(ns_of "$i")
    if ip netns list | grep -q "^${ns}\b"; then
      # Only processes still inside our own namespaces (left over by a failed run), by pid.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    fi
  done
  sleep 0.2
  for ((i = 0; i < nodes; i++)); do
    local ns; ns=$(ns_of "$i")
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/${ns}"
    if [[ -e "${state}/uts/node$i" ]]; then
      umount "${state}/uts/node$i" 2>/dev/null
      rm -f "${state}/uts/node$i"
    fi
  done
  ip netns del "$hub" 2>/dev/null
  rm -rf "$state"
  rmdir /etc/netns 2>/dev/null
  # `ip netns add` leaves /run/netns mounted on itself; undo that only when no namespace is
  # left in it (other users' namespaces keep it).
  if [[ -d /run/netns && -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null
    rmdir /run/netns 2>/dev/null
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "${state}/uts"
ip netns add "$hub"
ip -n "$hub" link add br0 type bridge
ip -n "$hub" link set br0 up
ip -n "$hub" link set lo up

hosts_file="${state}/hosts"
{
  echo "127.0.0.1 localhost"
  for ((i = 0; i < nodes; i++)); do echo "$(ip_of "$i") node$i"; done
} > "$hosts_file"

shape() {  # shape NETNS DEV
  [[ -n "$burst" ]] || return 0
  # latency bounds the queue (limit); 50 ms of queue at 1 Gbit/s is ~6 MB.
  ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$rate" burst "$burst" latency 50ms
}

for ((i = 0; i < nodes; i++)); do
  ns=$(ns_of "$i")
  ip netns add "$ns"
  # Own host name: a persistent UTS namespace bound to a file, entered by agent.sh.
  touch "${state}/uts/node$i"
  unshare --uts="${state}/uts/node$i" hostname "node$i"
  # Name resolution inside the node: `ip netns exec` bind-mounts /etc/netns/NS/hosts.
  mkdir -p "/etc/netns/${ns}"
  cp "$hosts_file" "/etc/netns/${ns}/hosts"
  # veth: eth0 inside the node, h$i in the hub on the bridge.
  ip link add "${prefix}-v$i" type veth peer name "${prefix}-h$i"
  ip link set "${prefix}-v$i" netns "$ns"
  ip link set "${prefix}-h$i" netns "$hub"
  ip -n "$ns" link set "${prefix}-v$i" name eth0
  ip -n "$hub" link set "${prefix}-h$i" name "h$i"
  ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$hub" link set "h$i" master br0
  ip -n "$hub" link set "h$i" up
  shape "$ns" eth0
  shape "$hub" "h$i"
done

hostfile="${state}/hostfile"
for ((i = 0; i < nodes; i++)); do echo "node$i slots=${slots}"; done > "$hostfile"

# Byte counters of every node's link (node side: tx = bytes the node sent into the network).
read_counters() {
  local out=""
  for ((i = 0; i < nodes; i++)); do
    local ns; ns=$(ns_of "$i")
    local tx rx
    tx=$(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/tx_bytes)
    rx=$(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/rx_bytes)
    out+="$tx $rx "
  done
  echo "$out"
}

# The emulated nodes share this machine's cores, which Open MPI cannot see (each node's slots
# fit "its" cores): waiting ranks yield the CPU instead of spinning on it, as they would on an
# oversubscribed node (NETEM_YIELD=0 turns this off).
mpirun_cmd="mpirun --allow-run-as-root --hostfile ${hostfile} \
--mca plm_rsh_agent ${here}/agent.sh --mca plm_rsh_no_tree_spawn 1 \
--mca btl self,vader,tcp --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
--mca mpi_yield_when_idle ${NETEM_YIELD:-1}"

echo "# netem: ${nodes} nodes x ${slots} slots, links ${rate}${burst:+ (tbf burst ${burst}, both ends)}, subnet ${subnet}.0/24"
before=($(read_counters))
set +e
NETEM_HOSTFILE="$hostfile" NETEM_MPIRUN="$mpirun_cmd" NETEM_IF=eth0 NETEM_NODES="$nodes" \
  NETEM_STATE="$state" \
  nsenter --uts="${state}/uts/node0" ip netns exec "$(ns_of 0)" sh -c "$*"
rc=$?
set -e
after=($(read_counters))

total_tx=0
total_rx=0
json_nodes=""
for ((i = 0; i < nodes; i++)); do
  tx=$((after[2 * i] - before[2 * i]))
  rx=$((after[2 * i + 1] - before[2 * i + 1]))
  total_tx=$((total_tx + tx))
  total_rx=$((total_rx + rx))
  echo "# netem: node$i eth0 sent ${tx} B, received ${rx} B"
  json_nodes+="${json_nodes:+, }{\"node\": \"node$i\", \"tx_bytes\": $tx, \"rx_bytes\": $rx}"
done
echo "# netem: all links: sent ${total_tx} B, received ${total_rx} B (command exit ${rc})"
if [[ -n "$counters" ]]; then
  printf '{"nodes": %d, "rate": "%s", "burst": "%s", "exit": %d, "tx_bytes": %d, "rx_bytes": %d, "per_node": [%s]}\n' \
    "$nodes" "$rate" "$burst" "$rc" "$total_tx" "$total_rx" "$json_nodes" > "$counters"
fi
exit "$rc"
