#!/usr/bin/env bash
# Prepares benches/gpu.sh for a GPU machine that cannot build (no crates.io there): the release
# binary and the GPU test binaries, stripped (the kit must stay small enough to carry), and a
# trained XOR teacher for the learning runs, in benches/out/gpu-kit/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT="${KIT:-benches/out/gpu-kit}"
T="${CARGO_TARGET_DIR:-target}"
rm -rf "$KIT"; mkdir -p "$KIT/tests"
cargo build --release --quiet
cp "$T/release/robust-snn" "$KIT/robust-snn"
# the GPU agreement tests: their executables, as cargo reports them
cargo test --release --no-run --message-format=json --test gpu_engine --test gpu_learn 2>/dev/null \
  | python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("gpu_engine", "gpu_learn"):
        shutil.copy(m["executable"], sys.argv[1] + "/tests/" + m["target"]["name"])
' "$KIT"
strip "$KIT/robust-snn" "$KIT"/tests/*
# a trained teacher, so the learning runs skip burn's training on the GPU machine
if [ ! -d "$KIT/teacher" ]; then
  tmp=$(mktemp -d)
  "$KIT/robust-snn" teacher --config configs/xor-plain.toml --out "$tmp" --backend cpu >/dev/null
  cp -r "$tmp/teacher" "$KIT/teacher"; rm -rf "$tmp"
fi
# one compressed file: the unpacked kit (about 100 MB) is larger than what a lent machine takes
tar -C "$(dirname "$KIT")" -czf "$KIT.tar.gz" "$(basename "$KIT")"
du -sh "$KIT" "$KIT.tar.gz"
echo "carry $KIT.tar.gz to the GPU machine and run: bash benches/gpu.sh"
