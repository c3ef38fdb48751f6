#!/usr/bin/env bash
# One command to measure a machine with a GPU: build, check CPU/GPU agreement, then benchmark a
# range of ensemble sizes on the GPU (and the CPU at the smallest size, for a ratio from the same
# run), then time mismatch-ensemble training of the default XOR network with E = 100 and
# E = 1000 chips per trial (issue 12: the trainer must scale to E = 1000; TRAIN_SIZES to change).
# Prints JSON lines and writes them to benches/gpu-results.jsonl.
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

echo "== CPU/GPU agreement (tests/gpu_engine.rs, tests/gpu_learn.rs)"
cargo test --release --quiet --test gpu_engine --test gpu_learn 2>&1 | grep -E "test result|FAILED|panicked"

: > "$OUT"
echo "== CPU reference, 64 instances"
"$BIN" bench --backend cpu --instances 64 --neurons "$NEURONS" --steps "$STEPS" --json | tee -a "$OUT"
for e in $SIZES; do
  echo "== GPU, $e instances"
  "$BIN" bench --backend gpu --instances "$e" --neurons "$NEURONS" --steps "$STEPS" --json | tee -a "$OUT"
done
# Ensemble training: one epoch of 20 trials of the default XOR network (N = 320, 1000 steps) on E
# chips per trial, a quick teacher; the log's "training" seconds are the figure.
TRAIN_SIZES="${TRAIN_SIZES:-100 1000}"
TDIR="$(mktemp -d)"
for e in $TRAIN_SIZES; do
  echo "== GPU ensemble training, $e chips per trial"
  "$BIN" train --config configs/xor.toml --out "$TDIR/e$e" --backend gpu \
    --set teacher.epochs=2 --set training.epochs=1 --set training.samples_per_epoch=20 \
    --set training.val_trials=4 --set training.test_trials=4 \
    --set training.robust.instances="$e" --set training.plain.compare=false 2>&1 \
    | grep -E "GPU ensemble trainer|epoch 1/1" | tee "$TDIR/e$e.log"
  secs=$(sed -n 's/.* s, \([0-9.]*\) s training).*/\1/p' "$TDIR/e$e.log" | tail -n 1)
  echo "{\"bench\": \"ensemble_training\", \"chips_per_trial\": $e, \"trials\": 20, \"steps\": 1000, \"neurons\": 320, \"training_seconds\": ${secs:-null}}" | tee -a "$OUT"
done
rm -rf "$TDIR"
echo "results in $OUT"
