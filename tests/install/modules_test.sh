#!/usr/bin/env bash
# Loads the installed modulefiles (install_test.sh made the prefix) with Lmod: the Lua one and the
# Tcl one (Lmod reads both; Debian's environment-modules conflicts with lmod, so Lmod is what
# loads the Tcl file here). Each must put the installed fedsilo on PATH, set FEDSILO_ROOT and
# CMAKE_PREFIX_PATH, and say in `module help` how to run a job. Exit 77 (ctest: skipped) where
# Lmod is not installed. Where the PyTorch binding is installed, each must put it on PYTHONPATH:
# /usr/bin/python3 then imports fedsilo.torch from the prefix.
set -euo pipefail
PREFIX=${1:?usage: modules_test.sh PREFIX}
LMOD_INIT=/usr/share/lmod/lmod/init/bash
if [[ ! -f "$LMOD_INIT" ]]; then
  echo "SKIP: Lmod is not installed ($LMOD_INIT missing): the modulefiles were not loaded"
  exit 77
fi
[[ -x "$PREFIX/bin/fedsilo" ]] || { echo "no install in $PREFIX (install_consumer runs first)"; exit 1; }
pydir=$PREFIX/lib/fedsilo/python
unset PYTHONPATH  # only the module's, so the import below shows where it comes from
# shellcheck disable=SC1090
source "$LMOD_INIT"
export LMOD_REDIRECT=yes  # module help to stdout

check_loaded() {  # check_loaded KIND: the environment a loaded fedsilo module must give
  local kind=$1
  [[ "$(command -v fedsilo)" == "$PREFIX/bin/fedsilo" ]] || { echo "$kind: fedsilo on PATH is '$(command -v fedsilo)'"; exit 1; }
  [[ "${FEDSILO_ROOT:-}" == "$PREFIX" ]] || { echo "$kind: FEDSILO_ROOT is '${FEDSILO_ROOT:-}'"; exit 1; }
  [[ ":${CMAKE_PREFIX_PATH:-}:" == *":$PREFIX:"* ]] || { echo "$kind: CMAKE_PREFIX_PATH lacks $PREFIX"; exit 1; }
  [[ ":${LD_LIBRARY_PATH:-}:" == *":$PREFIX/"* ]] || { echo "$kind: LD_LIBRARY_PATH lacks $PREFIX"; exit 1; }
  # Captured first: `cmd | grep -q` under pipefail fails when grep exits before cmd has written all.
  local help version
  help=$(module help fedsilo 2>&1)
  [[ "$help" == *"srun --mpi=pmix"* ]] || { echo "$kind: module help does not say how to run:"; echo "$help"; exit 1; }
  version=$(fedsilo --version)
  [[ "$version" == "fedsilo "* ]] || { echo "$kind: the loaded fedsilo does not run ($version)"; exit 1; }
  if [[ -f "$pydir/fedsilo/__init__.py" ]]; then
    [[ ":${PYTHONPATH:-}:" == *":$pydir:"* ]] || { echo "$kind: PYTHONPATH lacks $pydir ('${PYTHONPATH:-}')"; exit 1; }
    # From / : nothing on the path but the module's (no build tree, no source tree).
    local module=fedsilo.torch where
    /usr/bin/python3 -c 'import torch' 2>/dev/null || module=fedsilo  # no torch: the package alone
    where=$(cd / && /usr/bin/python3 -c "import $module, fedsilo; print(fedsilo.__file__, fedsilo._core.__file__)") ||
      { echo "$kind: /usr/bin/python3 cannot import $module"; exit 1; }
    for f in $where; do
      [[ "$f" == "$pydir/fedsilo/"* ]] || { echo "$kind: $module imported $f, not from $pydir"; exit 1; }
    done
    echo "$kind modulefile: import $module from $pydir"
  fi
  echo "$kind modulefile: ok"
}

for kind in lua tcl; do
  dir=$PREFIX/modulefiles
  [[ $kind == tcl ]] && dir=$PREFIX/modulefiles-tcl
  module purge >/dev/null 2>&1 || true
  module use "$dir"
  module load fedsilo
  check_loaded "$kind"
  module unload fedsilo
  [[ "$(command -v fedsilo || true)" != "$PREFIX/bin/fedsilo" ]] || { echo "$kind: unload left fedsilo on PATH"; exit 1; }
  [[ ":${PYTHONPATH:-}:" != *":$pydir:"* ]] || { echo "$kind: unload left $pydir on PYTHONPATH"; exit 1; }
  module unuse "$dir"
done
echo "modules test: ok"
