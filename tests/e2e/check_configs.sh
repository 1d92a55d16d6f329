#!/usr/bin/env bash
# Every config a user is shown must be valid: each ```toml block of README.md and every .toml
# under examples/ passes `fedsilo train --check` (parsing and validation only; the data they
# name need not exist). A block that fails is printed with fedsilo's message.
set -uo pipefail
FEDSILO=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"

# README.md's ```toml blocks, one file each.
awk -v dir="$WORK" '
  /^```toml[[:space:]]*$/ { n++; file = sprintf("%s/readme-%02d.toml", dir, n); inside = 1; next }
  /^```/ && inside { inside = 0; close(file); next }
  inside { print > file }
' "$SRC/README.md"
readme=$(find "$WORK" -name 'readme-*.toml' | wc -l)
mapfile -t examples < <(find "$SRC/examples" -name '*.toml' | sort)

checked=0 failed=0
for f in "$WORK"/readme-*.toml "${examples[@]}"; do
  checked=$((checked + 1))
  if ! out=$("$FEDSILO" train --check -q "$f" 2>&1); then
    failed=$((failed + 1))
    echo "FAIL: $f"
    echo "$out"
    [[ $f == "$WORK"/readme-* ]] && { echo "--- the block:"; cat "$f"; }
  fi
done
echo "checked $checked configs ($readme README blocks, ${#examples[@]} examples), $failed invalid"
# The extraction must have found something, or this test would pass on nothing.
if (( readme < 1 || ${#examples[@]} < 10 )); then
  echo "FAIL: expected README toml blocks and at least 10 example configs"
  exit 1
fi
# And --check must be able to fail: a key with no effect is refused with exit code 2.
printf '[data]\nsilos_dir = "x"\n[strategy]\nname = "fedavg"\nmu = 0.1\n' > "$WORK/bad.toml"
"$FEDSILO" train --check -q "$WORK/bad.toml" > "$WORK/bad.out" 2>&1
rc=$?
if [[ $rc -ne 2 ]] || ! grep -q 'strategy.mu: has no effect with strategy.name = "fedavg"' "$WORK/bad.out"; then
  echo "FAIL: --check of a fedavg config with mu exited $rc:"; cat "$WORK/bad.out"; exit 1
fi
exit $(( failed > 0 ))
