#!/usr/bin/env bash
# Installs the build into a fresh prefix, builds the consumer project against it with
# find_package(fedsilo), runs it and runs the installed command. The modulefiles are loaded by
# modules_test.sh against the same prefix.
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
PREFIX="$WORK/prefix"
cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log"
test -x "$PREFIX/bin/fedsilo"
test -f "$PREFIX/lib/cmake/fedsilo/fedsiloConfig.cmake"
test -f "$PREFIX/modulefiles/fedsilo/0.1.0.lua"
test -f "$PREFIX/modulefiles-tcl/fedsilo/0.1.0"
grep -q "$PREFIX" "$PREFIX/modulefiles/fedsilo/0.1.0.lua"
# Job template, examples and configs.
for f in share/fedsilo/slurm/fedsilo-job.sbatch share/fedsilo/slurm/examples/single-node.sbatch \
         share/fedsilo/slurm/examples/multi-node.sbatch share/fedsilo/slurm/examples/sweep-density.sbatch \
         share/fedsilo/examples/demo.toml; do
  test -f "$PREFIX/$f" || { echo "install lacks $f"; exit 1; }
done
# The SPANK plugin, wherever Slurm's header was there to build it.
if [[ -f /usr/include/slurm/spank.h ]]; then
  test -f "$PREFIX/lib/fedsilo/spank_fedsilo.so" || { echo "install lacks lib/fedsilo/spank_fedsilo.so"; exit 1; }
  symbols=$(nm -D "$PREFIX/lib/fedsilo/spank_fedsilo.so")
  grep -q " slurm_spank_init$" <<<"$symbols" ||
    { echo "spank_fedsilo.so exports no slurm_spank_init"; exit 1; }
fi

# The PyTorch binding, where the build has it: the package in the prefix, self-contained (no
# path into the build tree), and `fedsilo slurm` of the install puts it on a run.command job's
# PYTHONPATH. modules_test.sh imports it with the module loaded.
if [[ -f "$BUILD/python/fedsilo/__init__.py" ]]; then
  pydir="$PREFIX/lib/fedsilo/python"
  for f in fedsilo/__init__.py fedsilo/torch.py; do
    test -f "$pydir/$f" || { echo "install lacks lib/fedsilo/python/$f"; exit 1; }
  done
  cores=("$pydir"/fedsilo/_core*.so)
  core=${cores[0]}
  [[ -f "$core" ]] || { echo "install lacks lib/fedsilo/python/fedsilo/_core*.so"; exit 1; }
  if grep -qF "$BUILD" <(readelf -d "$core"; ldd "$core" 2>&1); then
    echo "the installed $core refers to the build tree $BUILD:"; readelf -d "$core" | grep -i path; exit 1
  fi
  mkdir -p "$WORK/job"
  printf 'silo-a /d/a /s/a alice\nsilo-b /d/b /s/b bob\n' > "$WORK/job/silos.txt"
  printf '[run]\nname = "py"\ncommand = "/usr/bin/python3 train.py"\n[data]\nsilos_dir = "silos"\n[model]\narch = "pytorch"\n[slurm]\nmanifest = "silos.txt"\n' \
    > "$WORK/job/py.toml"
  script=$(cd "$WORK/job" && "$PREFIX/bin/fedsilo" slurm py.toml)
  grep -qxF "export PYTHONPATH='$pydir'\"\${PYTHONPATH:+:\$PYTHONPATH}\"" <<<"$script" ||
    { echo "fedsilo slurm of the install does not put $pydir on the job's PYTHONPATH:"; echo "$script"; exit 1; }
  echo "python package: ok ($pydir)"
fi

# A portable build (the default, FEDSILO_ARCH=x86-64-v3): no AVX-512 instruction (zmm or mask
# registers) outside the kernels chosen at run time, whose functions live in an `avx512`
# namespace or carry avx512 in their name. A -march=native build is exempt.
if grep -q '^FEDSILO_NATIVE:BOOL=OFF' "$BUILD/CMakeCache.txt" && command -v objdump >/dev/null &&
   [[ "$(uname -m)" == x86_64 ]]; then
  stray=$(objdump -d --no-show-raw-insn -C "$PREFIX"/lib/libfedsilo.so.* "$PREFIX/bin/fedsilo" |
          awk '/^[0-9a-f]+ <.*>:$/ {fn = $0} /%zmm|%k[0-7]/ {print fn}' | sort -u | grep -v avx512 || true)
  if [[ -n "$stray" ]]; then
    echo "AVX-512 instructions outside the dispatched kernels (would crash an AVX2 node):"
    echo "$stray" | head -20
    exit 1
  fi
  dispatched=$(objdump -d --no-show-raw-insn -C "$PREFIX"/lib/libfedsilo.so.* |
               awk '/^[0-9a-f]+ <.*>:$/ {fn = $0} /%zmm/ {print fn}' | sort -u | wc -l)
  (( dispatched > 0 )) || { echo "no AVX-512 kernels found in the library at all"; exit 1; }
  echo "baseline check: AVX-512 only in the $dispatched dispatched kernel functions"
fi

cmake -S "$SRC/tests/install/consumer" -B "$WORK/consumer" -DCMAKE_PREFIX_PATH="$PREFIX" >"$WORK/consumer.log"
cmake --build "$WORK/consumer" >>"$WORK/consumer.log"
LD_LIBRARY_PATH="$PREFIX/lib:${LD_LIBRARY_PATH:-}" "$WORK/consumer/consumer"
"$PREFIX/bin/fedsilo" --version

echo "install test: ok"
