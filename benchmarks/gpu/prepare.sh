#!/usr/bin/env bash
# Builds what benchmarks/gpu/run.sh runs on the lent GPU machine, here (CUDA compiles on this
# machine; the GPU machine has no HDF5 and nothing can be installed there): a Release build
# with CUDA for sm_90 (H100/H200), portable x86-64 code (FEDSILO_NATIVE=OFF: the GPU machine's
# CPU is another model), stripped, plus the shared libraries the GPU machine lacks, copied from
# this Debian system (what `apt-get download` + `dpkg -x` would give). Prints what to carry:
#
#   device run: carry ["build/gpu"]  command: bash benchmarks/gpu/run.sh
#   the PyTorch binding, built there:  bash benchmarks/gpu/run.sh binding (same carry)
#   second call (the federation): also carry data/gpu-fmnist (the IDX files, 29.5 MiB):
#                                   bash benchmarks/gpu/run.sh federation
#
# The carry limit is 64 MiB per call (working tree included): the script fails if build/gpu
# (with or without the data) would not fit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build/gpu
cd "$ROOT"

# NCCL (the device allreduce inside a node) is a system library on the GPU machine, so it is
# linked, not carried (libnccl.so.2 is ~210 MB); FEDSILO_NCCL=OFF bash prepare.sh leaves it out
# for a machine without it (GPU ranks then sum through pinned host buffers and MPI).
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFEDSILO_CUDA=ON \
  -DFEDSILO_NCCL="${FEDSILO_NCCL:-AUTO}" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DFEDSILO_NATIVE=OFF -DFEDSILO_BUILD_TESTS=ON \
  -DFEDSILO_BUILD_BENCHMARKS=ON >/dev/null
targets=(fedsilo fedsilo_gpu_tests fedsilo_gpu_mpi_tests gpu_topk_bench local_train)
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"

# What run.sh needs, in one folder with relative paths: bin/, lib/ (libfedsilo + the libraries
# the GPU machine lacks). Everything else of the build folder stays behind (not carried).
STAGE=$BUILD/carry
rm -rf "$STAGE" && mkdir -p "$STAGE/bin" "$STAGE/lib"
cp "$BUILD/fedsilo" "$BUILD/tests/gpu/fedsilo_gpu_tests" "$BUILD/tests/gpu/fedsilo_gpu_mpi_tests" \
   "$BUILD/benchmarks/gpu_topk_bench" \
   "$BUILD/benchmarks/local_train" "$STAGE/bin/"
cp -L "$BUILD"/libfedsilo.so.0 "$STAGE/lib/"
# Libraries of this Debian that Ubuntu 24.04 + CUDA + Open MPI there may lack. Open MPI, CUDA,
# NCCL, OpenBLAS, libgomp, the C/C++ runtimes come from the GPU machine (its mpirun must match
# its libmpi).
keep='libhdf5|libsz|libaec|libcurl|libnghttp2|librtmp|libssh2|libpsl|libidn2|libunistring|libgssapi_krb5|libkrb5|libk5crypto|libkrb5support|libkeyutils|libcom_err|libldap|liblber|libsasl2|libbrotli|libgnutls|libhogweed|libnettle|libtasn1|libp11-kit|libffi|libgmp|libfmt|libtomlplusplus|libgfortran|libquadmath|libzstd'
for f in "$STAGE"/bin/* "$STAGE"/lib/libfedsilo.so.0; do
  ldd "$f" | awk '{print $3}' | grep -E "/($keep)[^/]*$" || true
done | sort -u | while read -r so; do cp -L "$so" "$STAGE/lib/"; done
strip --strip-unneeded "$STAGE"/bin/* "$STAGE"/lib/*.so* 2>/dev/null || true
# The PyTorch binding is compiled on the GPU machine (its Python, its torch) against the staged
# libfedsilo: it needs nlohmann/json's headers (header-only; not there) and a tiny partition.
mkdir -p "$STAGE/include" && cp -r /usr/include/nlohmann "$STAGE/include/"
"$BUILD/fedsilo" partition --dataset fashion-mnist --silos 2 --max-train 256 --max-test 64 -q \
  --out "$STAGE/data/silos2"
# Only the staged folder travels: everything else under build/gpu is removed from the carry by
# run.sh's caller choosing carry ["build/gpu/carry"].
size=$(du -sm "$STAGE" | cut -f1)
tree=$(git -C "$ROOT" ls-files -z | xargs -0 du -cm 2>/dev/null | tail -n 1 | cut -f1)
echo "prepare.sh: $STAGE is ${size} MiB (working tree ~${tree} MiB); carry [\"build/gpu/carry\"]"
if (( size + tree > 60 )); then
  echo "prepare.sh: over the 64 MiB a device call carries" >&2
  exit 1
fi

# The federation's data, for the second call: the four IDX files (29.5 MiB).
mkdir -p "$ROOT/data/gpu-fmnist"
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz "$ROOT/data/gpu-fmnist/"
echo "prepare.sh: federation call: carry [\"build/gpu/carry\", \"data/gpu-fmnist\"] ($(du -sm "$ROOT/data/gpu-fmnist" | cut -f1) MiB more)"
