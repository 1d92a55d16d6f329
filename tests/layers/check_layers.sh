#!/usr/bin/env bash
# Each layer of libfedsilo compiles with the include roots of itself and the layers below only
# (CMakeLists.txt, "the library, in layers"): a header of the layer above must not be found,
# one of its own must. Usage: check_layers.sh CXX LAYERS_DIR
set -euo pipefail
CXX=$1 LAYERS=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
# layer, a header of its own, a header of the layer above
checks=(
  "core        core/status.h             kernels/cpu/gemm.h"
  "kernels     kernels/cpu/gemm.h        mpi/comm.h"
  "comm        mpi/comm.h                fl/update_exchange.h"
  "federation  fl/strategy.h             cli/commands.h"
)
roots=()
for c in "${checks[@]}"; do
  read -r layer own above <<<"$c"
  roots+=("-I$LAYERS/$layer")
  echo "#include \"$own\"" > "$tmp/own.cpp"
  echo "#include \"$above\"" > "$tmp/above.cpp"
  if ! "$CXX" -std=c++20 -fsyntax-only "${roots[@]}" "$tmp/own.cpp" 2>"$tmp/err"; then
    echo "FAIL $layer: its own $own does not compile:"; head -3 "$tmp/err"; fail=1
  fi
  if "$CXX" -std=c++20 -fsyntax-only "${roots[@]}" "$tmp/above.cpp" 2>"$tmp/err"; then
    echo "FAIL $layer: includes $above of the layer above"; fail=1
  elif ! grep -q "$above: No such file" "$tmp/err"; then
    echo "FAIL $layer: $above failed for another reason:"; head -3 "$tmp/err"; fail=1
  else
    echo "ok   $layer: $own found, $above not"
  fi
done
exit $fail
