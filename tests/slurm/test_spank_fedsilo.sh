#!/usr/bin/env bash
# fedsilo itself through the SPANK plugin: `srun --mpi=pmix -n 2 --fedsilo-silos=M fedsilo
# train` on a two-silo Fashion-MNIST partition, each rank reading its silo at $FEDSILO_DATA_DIR
# and keeping its private state at $FEDSILO_STATE_DIR. The run ends with a model, every silo's
# real STATE_DIR holds its checkpointed state (ckpt-*.h5), and no silo state was written to the
# run directory instead.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/spank_lib.sh"
require_spank
fresh_test_dir
cd "$FEDSILO_TEST_DIR"
[[ -x "$FEDSILO_BIN" ]] || fail "no fedsilo command at $FEDSILO_BIN"

part=$(test_partition 2)
for s in silo-00 silo-01; do
  [[ -f "$part/$s/train.h5" ]] || fail "the partition $part has no $s/train.h5"
  mkdir -p "state/$s"
done
{ echo "# silo  DATA_DIR  STATE_DIR  ALLOWED"
  for s in silo-00 silo-01; do echo "$s $part/$s $FEDSILO_TEST_DIR/state/$s root"; done
} > manifest.txt

cat > cfg.toml <<TOML
[run]
name = "spank"
seed = 1
rounds = 2
out_dir = "runs/spank"
checkpoint_every = 1
[data]
silos_dir = "$part"
[model]
arch = "mlp"
hidden = [64]
[local]
epochs = 1
batch_size = 32
lr = 0.05
momentum = 0.9
threads = 1
[strategy]
name = "fedavg"
fraction = 1.0
TOML

rc=0
timeout 300 srun --immediate=30 --mpi=pmix -n 2 --fedsilo-silos="$FEDSILO_TEST_DIR/manifest.txt" \
  "$FEDSILO_BIN" train cfg.toml -q > train.out 2>&1 || rc=$?
[[ $rc -eq 0 ]] || { cat train.out >&2; fail "fedsilo train under the plugin exited $rc"; }
[[ -f runs/spank/model.h5 ]] || { cat train.out >&2; fail "no runs/spank/model.h5"; }
for s in silo-00 silo-01; do
  compgen -G "state/$s/ckpt-*.h5" > /dev/null ||
    { ls -lR state runs/spank >&2; fail "silo $s's STATE_DIR has no ckpt-*.h5: fedsilo did not keep its state at \$FEDSILO_STATE_DIR"; }
done
[[ ! -e runs/spank/private ]] || fail "silo state was written to runs/spank/private, not to the STATE_DIRs"
echo "PASS: fedsilo trained 2 rounds on 2 silos through the plugin; state in each STATE_DIR"
