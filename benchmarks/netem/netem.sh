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
# Facts behind the numbers (docs/environment.md): 1gbit with burst 256kb measured
# 0.96 Gbit/s, 10gbit with burst 2mb 9.6 Gbit/s (a 64kb burst under-delivers at 10gbit); this
# kernel has no netem, so no added delay (node-to-node round trip ~0.07 ms). The nodes are built
# by nodes.sh, shared with tests/slurm/multinode.sh (prefix fstest, 10.78.0.0/24).
set -euo pipefail

nodes=4
rate=1gbit
slots=2
counters=""
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "${here}/nodes.sh"

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
burst=$(nodes_burst "$rate") || { echo "netem.sh: --rate 1gbit, 10gbit or none" >&2; exit 2; }

# Everything this script creates carries the fsbench prefix; nothing else is touched.
nodes_init fsbench 10.77.0 "$nodes"
state=$nodes_state           # UTS namespace files, hostfile (agent.sh reads them)
subnet=$nodes_subnet
ns_of() { nodes_ns "$1"; }

if nodes_exists; then
  echo "netem.sh: ${nodes_hub} exists: another emulated cluster is running (or a stale one:" \
       "delete it with 'ip netns del'; this script cleans up after itself)" >&2
  exit 2
fi

teardown() {
  local rc=$?
  set +e
  nodes_down
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

nodes_up "$rate"

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
--mca mpi_yield_when_idle ${NETEM_YIELD:-1}${FEDSILO_SHM_SPIN:+ -x FEDSILO_SHM_SPIN}"

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
