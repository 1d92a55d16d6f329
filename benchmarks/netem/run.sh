#!/usr/bin/env bash
# The allreduce measurements on an emulated cluster (netem.sh): 4 nodes x 2 ranks,
# links at 1 Gbit/s and 10 Gbit/s, n = 2^22 and 2^24 floats (16 and 64 MiB of fp32), densities
# 10%, 1%, 0.1%, compression level node with fp16 values, every algorithm and auto, 20 timed
# iterations after 3 warm-ups, every result checked first (-c). Writes one JSON per link rate
# (the benchmark's rows) plus the interfaces' own counters, and the printed tables, to $OUT.
#
#   benchmarks/netem/run.sh [matrix|target|sweep|node|all]
#
# node: no emulated network; what one node does with its own cores: 2 ranks on this machine as
# one node (FEDSILO_EMULATED_NODES=1), sparse-hier at the target cell with exact and sampled
# top-k (node phase + compression + merge, the per-node part of the 10x arithmetic).
# target: only the target cell (n = 2^24, 1%; benchmarks/RESULTS.md, "Allreduce") at both link
# rates, and at 1 Gbit/s once more with sampled top-k.
# The benchmark interleaves the algorithms of each (size, density) cell iteration by iteration
# (BLOCKS=1 adds --blocks: each row's iterations back to back).
# sweep: auto against every algorithm from 64 KiB to 256 MiB (x4 steps), density 1%,
# unthrottled and at 1 Gbit/s (the "every measured cell" check of auto; SWEEP_MAX_1GBIT caps
# the throttled sizes, default 256M: dense MPI_Allreduce of 256 MiB takes ~7 s there).
# Environment: BUILD_DIR (default build-bench; fedsilo is built there if missing), OUT
# (default benchmarks/netem/results), ITERS (20), WARMUP (3), SIZES (the matrix's -b/-e/-f,
# default "-b 16M -e 64M -f 4"; a smaller one for a smoke test), QUIET_WAIT (seconds to wait for
# idle CPUs before each run, default 900; 0 = don't): 8 ranks on 2 cores measure the machine
# as much as the network, so every run starts on idle CPUs and prints the load it saw.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/benchmarks/netem"
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
OUT=${OUT:-$HERE/results}
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-3}
SIZES=${SIZES:--b 16M -e 64M -f 4}
SWEEP_MAX_1GBIT=${SWEEP_MAX_1GBIT:-256M}
QUIET_WAIT=${QUIET_WAIT:-900}
what=${1:-matrix}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [[ ! -x "$BUILD_DIR/fedsilo" ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -DFEDSILO_CUDA=OFF > /dev/null
  cmake --build "$BUILD_DIR" -j2 --target fedsilo
fi
mkdir -p "$OUT"
cd "$ROOT"  # the benchmark reads the commit with git in its working directory

busy_1s() {  # percent of CPU time busy over one second (/proc/stat)
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 1
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]) - (a[1]+a[2]+a[3]+a[6]+a[7]) ))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}
wait_quiet() {  # until the CPUs are >= 90% idle for 5 s in a row, or QUIET_WAIT runs out
  local waited=0 calm=0 b=100
  while (( QUIET_WAIT > 0 && waited < QUIET_WAIT && calm < 5 )); do
    b=$(busy_1s); waited=$((waited + 1))
    if (( b <= 10 )); then calm=$((calm + 1)); else calm=0; fi
  done
  echo "== CPUs busy ${b}% before $1 (waited ${waited} s; load $(cut -d' ' -f1-3 /proc/loadavg))"
}

# run NAME RATE BENCH-ARGS...: one emulated cluster, one benchmark run.
run() {
  local name=$1 rate=$2
  shift 2
  wait_quiet "$name"
  "$HERE/netem.sh" --nodes 4 --slots 2 --rate "$rate" --counters "$OUT/$name.links.json" -- \
    "\$NETEM_MPIRUN -n 8 $BUILD_DIR/fedsilo bench allreduce $* --netdev eth0 --json $OUT/$name.json" \
    2>&1 | tee "$OUT/$name.txt"
}

common="--level node --value-type fp16 -n $ITERS -w $WARMUP -c \
--algorithms dense-flat,dense-hier,sparse-hier,auto${BLOCKS:+ --blocks}"

if [[ $what == matrix || $what == all ]]; then
  for rate in 1gbit 10gbit; do
    run "matrix-$rate" "$rate" $SIZES --densities 0.1,0.01,0.001 $common
  done
fi
if [[ $what == target || $what == all ]]; then
  for rate in 1gbit 10gbit; do
    run "target-$rate" "$rate" -b 64M -e 64M --densities 0.01 $common
  done
  run "target-1gbit-topk-sampled" 1gbit -b 64M -e 64M --densities 0.01 --method topk-sampled $common
fi
if [[ $what == node || $what == all ]]; then
  wait_quiet node
  for m in topk topk-sampled; do
    mpirun --oversubscribe -np 2 --mca btl self,vader --mca btl_vader_single_copy_mechanism none \
      -x FEDSILO_EMULATED_NODES=1 "$BUILD_DIR/fedsilo" bench allreduce -b 64M -e 64M \
      --densities 0.01 --level node --value-type fp16 -n "$ITERS" -w "$WARMUP" --method "$m" \
      --algorithms sparse-hier --json "$OUT/node-$m.json" 2>&1 | tee "$OUT/node-$m.txt"
  done
fi
if [[ $what == sweep || $what == all ]]; then
  run sweep-none none -b 64K -e 256M -f 4 --densities 0.01 $common
  run sweep-1gbit 1gbit -b 64K -e "$SWEEP_MAX_1GBIT" -f 4 --densities 0.01 $common
fi
