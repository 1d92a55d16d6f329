# Emulated nodes on one machine (sourced by netem.sh and tests/slurm/multinode.sh): K nodes as
# network + UTS namespaces (host names node0..nodeK-1, resolvable in every node) on veth links
# to a bridge in a hub namespace, on a private /24, each link optionally rate-limited with tc
# tbf on both ends. Needs root, iproute2 and util-linux. Everything it creates carries a prefix;
# nothing else is touched.
#
#   nodes_init PREFIX SUBNET K       names: namespaces PREFIX-hub, PREFIX-node0.., state in
#                                    /run/PREFIX, node i at SUBNET.(10+i) (SUBNET as "10.77.0")
#   nodes_exists                     exit 0 when PREFIX's hub namespace exists
#   nodes_up [RATE]                  builds the nodes; RATE 1gbit | 10gbit | none (default)
#   nodes_exec I COMMAND...          runs COMMAND in node I (its host name, network, /etc/hosts)
#   nodes_down                       kills what still runs in the nodes (by pid), removes them
#   nodes_ns I, nodes_ip I, nodes_burst RATE   names, addresses, the tbf burst of a rate
#
# Facts behind the numbers (docs/environment.md): 1gbit with burst 256kb measured
# 0.96 Gbit/s, 10gbit with burst 2mb 9.6 Gbit/s (a 64kb burst under-delivers at 10gbit).

nodes_init() {
  nodes_prefix=$1
  nodes_subnet=$2
  nodes_count=$3
  nodes_hub="${nodes_prefix}-hub"
  nodes_state="/run/${nodes_prefix}"   # UTS namespace files, hosts file
}

nodes_ns() { echo "${nodes_prefix}-node$1"; }
nodes_ip() { echo "${nodes_subnet}.$((10 + $1))"; }

nodes_burst() {
  case "$1" in
    1gbit) echo 256kb ;;
    10gbit) echo 2mb ;;
    none) echo "" ;;
    *) return 1 ;;
  esac
}

nodes_exists() { ip netns list | grep -q "^${nodes_hub}\b"; }

nodes_exec() {
  local i=$1; shift
  nsenter --uts="${nodes_state}/uts/node$i" ip netns exec "$(nodes_ns "$i")" "$@"
}

# _nodes_shape NETNS DEV RATE BURST
_nodes_shape() {
  [[ -n "$4" ]] || return 0
  # latency bounds the queue (limit); 50 ms of queue at 1 Gbit/s is ~6 MB.
  ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$3" burst "$4" latency 50ms
}

nodes_up() {
  local rate=${1:-none} burst i ns
  burst=$(nodes_burst "$rate") || { echo "nodes.sh: unknown rate '$rate'" >&2; return 2; }
  mkdir -p "${nodes_state}/uts"
  ip netns add "$nodes_hub"
  ip -n "$nodes_hub" link add br0 type bridge
  ip -n "$nodes_hub" link set br0 up
  ip -n "$nodes_hub" link set lo up

  local hosts_file="${nodes_state}/hosts"
  {
    echo "127.0.0.1 localhost"
    for ((i = 0; i < nodes_count; i++)); do echo "$(nodes_ip "$i") node$i"; done
  } > "$hosts_file"

  for ((i = 0; i < nodes_count; i++)); do
    ns=$(nodes_ns "$i")
    ip netns add "$ns"
    # Own host name: a persistent UTS namespace bound to a file, entered by nodes_exec.
    touch "${nodes_state}/uts/node$i"
    unshare --uts="${nodes_state}/uts/node$i" hostname "node$i"
    # Name resolution inside the node: `ip netns exec` bind-mounts /etc/netns/NS/hosts.
    mkdir -p "/etc/netns/${ns}"
    cp "$hosts_file" "/etc/netns/${ns}/hosts"
    # veth: eth0 inside the node, h$i in the hub on the bridge.
    ip link add "${nodes_prefix}-v$i" type veth peer name "${nodes_prefix}-h$i"
    ip link set "${nodes_prefix}-v$i" netns "$ns"
    ip link set "${nodes_prefix}-h$i" netns "$nodes_hub"
    ip -n "$ns" link set "${nodes_prefix}-v$i" name eth0
    ip -n "$nodes_hub" link set "${nodes_prefix}-h$i" name "h$i"
    ip -n "$ns" addr add "$(nodes_ip "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$nodes_hub" link set "h$i" master br0
    ip -n "$nodes_hub" link set "h$i" up
    _nodes_shape "$ns" eth0 "$rate" "$burst"
    _nodes_shape "$nodes_hub" "h$i" "$rate" "$burst"
  done
}

# Safe on a half-built or already removed set of nodes; never fails (also under set -e).
nodes_down() {
  local -
  set +e
  local i ns pid
  for ((i = 0; i < nodes_count; i++)); do
    ns=$(nodes_ns "$i")
    if ip netns list | grep -q "^${ns}\b"; then
      # Only processes still inside our own namespaces (left over by a failed run), by pid.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    fi
  done
  sleep 0.2
  for ((i = 0; i < nodes_count; i++)); do
    ns=$(nodes_ns "$i")
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/${ns}"
    if [[ -e "${nodes_state}/uts/node$i" ]]; then
      umount "${nodes_state}/uts/node$i" 2>/dev/null
      rm -f "${nodes_state}/uts/node$i"
    fi
  done
  ip netns del "$nodes_hub" 2>/dev/null
  rm -rf "$nodes_state"
  rmdir /etc/netns 2>/dev/null
  # `ip netns add` leaves /run/netns mounted on itself; undo that only when no namespace is
  # left in it (other users' namespaces keep it).
  if [[ -d /run/netns && -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null
    rmdir /run/netns 2>/dev/null
  fi
  return 0
}
