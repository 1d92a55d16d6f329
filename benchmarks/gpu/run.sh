#!/usr/bin/env bash
# The GPU check in one call on the lent GPU machine (benchmarks/gpu/prepare.sh builds
# and stages everything here first; the machine has no HDF5 and cannot install anything):
#
#   bash benchmarks/gpu/run.sh             GPU tests (and the device allreduce on 1-4 MPI ranks),
#                                          then fedsilo against PyTorch on the same GPU:
#                                          exact top-k (n = 2^24/2^26/2^28, k = 1%) vs torch.topk,
#                                          training samples/s (niid-cnn, mlp; batch 64 and 512)
#                                          vs PyTorch eager; a table last. Under 4 minutes.
#   bash benchmarks/gpu/run.sh federation  the NIID-Bench Dirichlet(0.5) federation, 10 ranks
#                                          sharing the GPU (needs data/gpu-fmnist carried)
#   bash benchmarks/gpu/run.sh binding     the PyTorch binding built there; a model on the GPU
#                                          against the same on the CPU (bit for bit)
#
# Outputs (JSON and logs) go to $OUT (the device tool's folder) or ./gpu-results.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
C=$ROOT/build/gpu/carry
OUT=${OUT:-$ROOT/gpu-results}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$C/lib:${LD_LIBRARY_PATH:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
PY=${PY:-python3}
what=${1:-check}
[[ -x "$C/bin/fedsilo" ]] || { echo "run.sh: no staged build in $C (run benchmarks/gpu/prepare.sh first and carry build/gpu/carry)"; exit 2; }
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
step() { echo "== $* ($(date +%T))"; }
# Every test and check runs even after a failure (GPU time is short: learn all there is); the
# script then exits 1 naming each one that failed.
failures=()
check() {  # check NAME EXIT_CODE
  if [[ $2 -ne 0 ]]; then failures+=("$1 (exit $2)"); echo "FAILED: $1 (exit $2)"; fi
}
finish() {
  if (( ${#failures[@]} > 0 )); then
    printf 'run.sh: %d failed:\n' "${#failures[@]}"; printf '  %s\n' "${failures[@]}"; exit 1
  fi
  echo "run.sh: everything passed"; exit 0
}

if [[ $what == check ]]; then
  step "GPU tests"
  timeout 150 "$C/bin/fedsilo_gpu_tests" --gtest_output="json:$OUT/gpu_tests.json" > "$OUT/gpu_tests.txt" 2>&1
  rc=$?; echo "gpu tests exit $rc"; check "GPU tests" $rc  # 77: every test skipped (no device) is a failure here
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]" "$OUT/gpu_tests.txt" | tail -n 30
  # The device allreduce under MPI, ranks sharing the GPU: NCCL with one rank per communicator
  # and the host-staged path (NCCL across several GPUs needs a machine with several).
  for np in 1 2 3 4; do
    timeout 90 mpirun --oversubscribe --bind-to none -np $np "$C/bin/fedsilo_gpu_mpi_tests" \
      --gtest_filter=-*WithoutADevice* > "$OUT/gpu_mpi_tests_np$np.txt" 2>&1
    rc=$?; echo "gpu mpi tests np $np exit $rc"; check "GPU MPI tests, $np ranks" $rc
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED  \]" "$OUT/gpu_mpi_tests_np$np.txt" | tail -n 10
  done

  step "exact top-k: fedsilo vs torch.topk"
  timeout 120 "$C/bin/gpu_topk_bench" --sizes 24,26,28 --density 0.01 --repeats 20 --commit "$COMMIT" \
    --json "$OUT/topk.json" 2>&1 | tail -n 6
  check "top-k benchmark (validated against the CPU)" "${PIPESTATUS[0]}"
  timeout 120 "$PY" "$ROOT/benchmarks/gpu/torch_topk.py" --sizes 24,26,28 --density 0.01 \
    --json "$OUT/torch_topk.json" 2>&1 | tail -n 5
  check "torch.topk reference" "${PIPESTATUS[0]}"

  for batch in 64 512; do
    batches=$(( batch == 64 ? 400 : 100 ))
    step "training, batch $batch: fedsilo vs PyTorch eager"
    timeout 150 "$C/bin/local_train" --device cuda --synthetic --batch $batch --batches $batches \
      --repeats 5 --models niid-cnn,mlp --commit "$COMMIT" --json "$OUT/train_b$batch.json" 2>&1 | tail -n 4
    check "training benchmark, batch $batch" "${PIPESTATUS[0]}"
    timeout 150 "$PY" "$ROOT/benchmarks/local_train/pytorch_ref.py" --device cuda --synthetic \
      --batch $batch --batches $batches --repeats 5 --models niid-cnn,mlp \
      --json "$OUT/torch_train_b$batch.json" 2>&1 | tail -n 3
    check "PyTorch training reference, batch $batch" "${PIPESTATUS[0]}"
  done
  step "table"
  "$PY" "$ROOT/benchmarks/gpu/table.py" "$OUT" | tee "$OUT/table.md"
  check "table" "${PIPESTATUS[0]}"
  finish
fi

if [[ $what == federation ]]; then
  data=$ROOT/data/gpu-fmnist
  [[ -f $data/train-images-idx3-ubyte.gz ]] || { echo "run.sh: carry data/gpu-fmnist (prepare.sh fills it)"; exit 2; }
  work=$(mktemp -d)
  step "partition (10 silos, Dirichlet(0.5), seed 1)"
  "$C/bin/fedsilo" partition --dataset fashion-mnist --idx-dir "$data" --silos 10 \
    --scheme dirichlet:0.5 --seed 1 -q --out "$work/fmnist" || exit 1
  sed -e "s#^silos_dir = .*#silos_dir = \"$work/fmnist\"#" -e "s#^out_dir = .*#out_dir = \"$work/run\"#" \
    "$ROOT/examples/gpu/niid-bench-cuda.toml" > "$work/cfg.toml"
  step "federation: 10 ranks on one GPU"
  start=$(date +%s.%N)
  timeout 580 mpirun --oversubscribe -np 10 --bind-to none "$C/bin/fedsilo" train "$work/cfg.toml" \
    2>&1 | tee "$OUT/federation.txt" | grep -E "^round +[0-9]+/50|summary|accuracy|wall" | tail -n 12
  rc=${PIPESTATUS[0]}
  end=$(date +%s.%N)
  cp "$work/run/metrics.jsonl" "$OUT/federation.metrics.jsonl" 2>/dev/null
  echo "federation exit $rc, wall $(awk "BEGIN{printf \"%.1f\", $end - $start}") s (target < 300 s; CPU run 87.07%)"
  check "federation" "$rc"
  [[ -f "$work/run/model.h5" ]] || check "federation left no model.h5" 1
  finish
fi
if [[ $what == binding ]]; then
  # The PyTorch binding on the GPU machine's Python and torch, against the staged libfedsilo:
  # compiled there (about a minute), then tests/gpu/binding_cuda.py with the model on the CPU
  # and on the GPU, 2 ranks each; the CUDA run must equal the CPU run bit for bit.
  work=$(mktemp -d)
  mkdir -p "$work/py/fedsilo"
  cp "$ROOT"/src/python/fedsilo/*.py "$work/py/fedsilo/"
  suffix=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
  step "compile the binding ($("$PY" --version), torch $("$PY" -c 'import torch; print(torch.__version__)'))"
  timeout 180 c++ -O2 -std=c++20 -shared -fPIC -DFEDSILO_VERSION=\"binding-gpu\" \
    -I"$ROOT/src" -I"$ROOT" -I"$C/include" $("$PY" -m pybind11 --includes) \
    "$ROOT/src/python/binding.cpp" -L"$C/lib" -l:libfedsilo.so.0 -Wl,-rpath,"$C/lib" \
    -o "$work/py/fedsilo/_core$suffix" > "$OUT/binding_build.txt" 2>&1
  rc=$?; tail -n 5 "$OUT/binding_build.txt"; check "binding build" $rc
  if [[ $rc -eq 0 ]]; then
    # Every silo each round, then half of them (the other's update is cleared on its device).
    for variant in all half; do
      extra=""; [[ $variant == half ]] && extra='[strategy]\nfraction = 0.5\n'
      printf '[run]\nname = "binding-cuda"\nrounds = 3\nout_dir = "%s"\n[data]\nsilos_dir = "%s"\n[model]\narch = "pytorch"\n'"$extra" \
        "$work/run-$variant" "$C/data/silos2" > "$work/cfg-$variant.toml"
      for dev in cpu cuda; do
        step "binding ($variant silos), model on $dev, 2 ranks"
        PYTHONPATH="$work/py" timeout 120 mpirun --oversubscribe --bind-to none -np 2 "$PY" \
          "$ROOT/tests/gpu/binding_cuda.py" "$work/cfg-$variant.toml" --device $dev \
          --out "$work/$variant-$dev.pt" > "$OUT/binding_${variant}_$dev.txt" 2>&1
        rc=$?; tail -n 5 "$OUT/binding_${variant}_$dev.txt"; check "binding ($variant), $dev" $rc
      done
      PYTHONPATH="$work/py" "$PY" "$ROOT/tests/gpu/binding_cuda.py" --compare "$work/$variant-cpu.pt" \
        "$work/$variant-cuda.pt" | tee "$OUT/binding_${variant}_compare.txt"
      check "binding ($variant), CUDA equals CPU" "${PIPESTATUS[0]}"
    done
  fi
  finish
fi
echo "usage: run.sh [check|federation|binding]"; exit 2
