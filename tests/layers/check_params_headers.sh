#!/usr/bin/env bash
# The parameter headers a CPU kernel and its CUDA twin share (kernels/params/*.h) stay plain
# C++17 that nvcc accepts, each compiling on its own with the include roots of the core and
# kernels layers only; and no CUDA kernel source includes a CPU kernel header (the twins meet in
# kernels/params/, nowhere else). Usage: check_params_headers.sh CXX LAYERS_DIR SOURCE_DIR [NVCC]
set -euo pipefail
CXX=$1 LAYERS=$2 SRC=$3 NVCC=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
roots=("-I$LAYERS/core" "-I$LAYERS/kernels")
headers=("$SRC"/kernels/params/*.h)
if [ ! -e "${headers[0]}" ]; then
  echo "FAIL no headers in $SRC/kernels/params"; exit 1
fi
: > "$tmp/all.cu"
for h in "${headers[@]}"; do
  rel=kernels/params/$(basename "$h")
  echo "#include \"$rel\"" > "$tmp/one.cpp"
  echo "#include \"$rel\"" >> "$tmp/all.cu"
  if "$CXX" -std=c++17 -pedantic -Wall -Wextra -Werror -fsyntax-only "${roots[@]}" "$tmp/one.cpp" \
      2>"$tmp/err"; then
    echo "ok   $rel: standalone C++17"
  else
    echo "FAIL $rel is not standalone C++17:"; head -5 "$tmp/err"; fail=1
  fi
done
if [ -n "$NVCC" ]; then
  if "$NVCC" -std=c++17 -x cu -c "${roots[@]}" "$tmp/all.cu" -o "$tmp/all.o" 2>"$tmp/err"; then
    echo "ok   nvcc -std=c++17 compiles every kernels/params header"
  else
    echo "FAIL nvcc -std=c++17 rejects kernels/params:"; head -5 "$tmp/err"; fail=1
  fi
fi
if grep -n '#include "kernels/cpu/' "$SRC"/kernels/cuda/*.h "$SRC"/kernels/cuda/*.cu \
    "$SRC"/kernels/cuda/*.cuh; then
  echo "FAIL the CUDA kernels above include CPU kernel headers (share kernels/params/ instead)"
  fail=1
else
  echo "ok   no kernels/cuda source includes kernels/cpu"
fi
exit $fail
