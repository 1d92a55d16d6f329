#!/bin/sh
# Open MPI's plm_rsh_agent for the emulated cluster of netem.sh: called as `agent.sh HOST
# COMMAND...` (as ssh would be), it enters HOST's UTS and network namespaces and runs the
# command line with `sh -c`. Only the node names netem.sh created are accepted.
set -eu
state=${NETEM_STATE:-/run/fsbench}
host=$1
shift
case "$host" in
  node[0-9]*) ;;
  *) echo "agent.sh: unknown node '$host'" >&2; exit 255 ;;
esac
[ -e "$state/uts/$host" ] || { echo "agent.sh: no emulated node '$host'" >&2; exit 255; }
exec nsenter --uts="$state/uts/$host" ip netns exec "fsbench-$host" sh -c "$*"
