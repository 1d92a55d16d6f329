#!/usr/bin/env bash
# `fedsilo privacy` as users run it: the epsilons of Opacus's README example and TF-Privacy's
# test run (RDP and PLD, text and JSON), and exit code 2 with a one-line message for bad flags.
# Usage: privacy_cli.sh FEDSILO
set -uo pipefail
BIN=$1
fail=0

# expect RC PATTERN ARGS...: runs `fedsilo privacy ARGS`, checks the exit code and that stdout
# and stderr together hold PATTERN (grep -E).
expect() {
  local want_rc=$1 pattern=$2
  shift 2
  local out rc
  out=$("$BIN" privacy "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want_rc ]] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL fedsilo privacy $*: exit $rc (want $want_rc), output:"
    echo "$out" | sed 's/^/    /'
    echo "  expected to match: $pattern"
    fail=1
  else
    echo "ok   fedsilo privacy $*"
  fi
}

# Opacus's README example: q = 0.04, sigma = 1.5, 90 epochs = 2250 steps: 7.32911117.
expect 0 'epsilon +7\.3291112 \(best RDP order 3\.9\)' \
  --sample-rate 0.04 --noise-multiplier 1.5 --epochs 90
expect 0 'steps +2250 \(90 epochs\)' --sample-rate 0.04 --noise-multiplier 1.5 --epochs 90
# TF-Privacy's test value: batch 150 of 60000, sigma = 1.3, 6000 steps: 0.72422340.
expect 0 '"epsilon":0\.724223402' \
  --batch-size 150 --dataset-size 60000 --noise-multiplier 1.3 --steps 6000 --json
# dp_accounting's PLDAccountant on the same run: 0.64011093.
expect 0 'epsilon +0\.6401109' \
  --batch-size 150 --dataset-size 60000 --noise-multiplier 1.3 --steps 6000 --accountant pld
# The noise for Opacus's epsilon is its sigma, 1.5 (within the search's 0.1% in epsilon).
expect 0 'noise multiplier +1\.(49[89]|50?$)' \
  --sample-rate 0.04 --target-epsilon 7.3291112 --steps 2250

expect 2 '^fedsilo privacy: error: --sample-rate must be in \[0, 1\], got 1\.5$' \
  --sample-rate 1.5 --noise-multiplier 1 --steps 10
expect 2 "unknown accountant 'moments' \(expected rdp or pld\)" \
  --sample-rate 0.01 --noise-multiplier 1 --steps 10 --accountant moments
expect 2 'excludes --target-epsilon' \
  --sample-rate 0.01 --noise-multiplier 1 --target-epsilon 1 --steps 10
expect 2 'give --steps T or --epochs E' --sample-rate 0.01 --noise-multiplier 1
expect 2 'target epsilon 0\.05 is out of reach' --sample-rate 0.01 --target-epsilon 0.05 --steps 100
expect 2 'noise' --sample-rate 0.01 --noise 1 --steps 10
exit $fail
