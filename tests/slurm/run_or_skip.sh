#!/usr/bin/env bash
# Runs the given command when a test Slurm cluster can exist here (root, Slurm and munge
# installed); otherwise says why and exits 77, which CTest reports as skipped.
if [[ $(id -u) -ne 0 ]]; then echo "skipped: the Slurm tests need root (slurmd, munged, mount namespaces)"; exit 77; fi
for t in slurmctld slurmd munged sbatch; do
  command -v "$t" >/dev/null || { echo "skipped: $t not installed (scripts/install-deps.sh installs Slurm)"; exit 77; }
done
exec "$@"
