#!/usr/bin/env bash
# One command to measure a machine with a GPU: build, check CPU/GPU agreement, then benchmark a
# range of ensemble sizes on the GPU (and the CPU at the smallest size, for a ratio from the same
# run). Prints JSON lines and writes them to benches/gpu-results.jsonl.
#
#   bash benches/gpu.sh            # defaults: 768 neurons, 1000 steps, 20 % mismatch, 5 Hz
#   SIZES="64 1024 10000" bash benches/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-64 1024 4096 10000}"
NEURONS="${NEURONS:-768}"
STEPS="${STEPS:-1000}"
OUT="${OUT:-benches/gpu-results.jsonl}"

echo "== build"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/robust-snn"

echo "== CPU/GPU agreement (tests/gpu_engine.rs)"
cargo test --release --quiet --test gpu_engine 2>&1 | tail -n 3

: > "$OUT"
echo "== CPU reference, 64 instances"
"$BIN" bench --backend cpu --instances 64 --neurons "$NEURONS" --steps "$STEPS" --json | tee -a "$OUT"
for e in $SIZES; do
  echo "== GPU, $e instances"
  "$BIN" bench --backend gpu --instances "$e" --neurons "$NEURONS" --steps "$STEPS" --json | tee -a "$OUT"
done
echo "results in $OUT"
