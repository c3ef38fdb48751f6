#!/usr/bin/env bash
# One-shot measurement of a machine with a GPU: the run plan of
# ../shared/reference/gpu-performance.md section 10, rows 1-9, under 8 minutes. It compiles
# nothing: a GPU machine lent for minutes cannot reach crates.io, and a build there would eat the
# time. Prepare here first:
#
#   bash benches/prepare-gpu.sh     # builds, packs the stripped binary, the GPU test binaries and
#                                   # a trained teacher into benches/out/gpu-kit.tar.gz
#   bash benches/gpu.sh             # on the GPU machine (carry benches/out/gpu-kit.tar.gz)
#
# Every step runs under `timeout`; every run prints one JSON line tagged with its plan row
# ("run": "1", "run": "2", ...) into $OUT/gpu.jsonl; a markdown summary table is printed last
# (and written to $OUT/summary.md), ready for benches/RESULTS.md.
#   SMOKE=1 bash benches/gpu.sh    # every row at toy sizes (checks the script on any adapter)
#   ROWS="8 9" bash benches/gpu.sh # only these rows (a rerun appends to gpu.jsonl)
set -uo pipefail
cd "$(dirname "$0")/.."

KIT="${KIT:-benches/out/gpu-kit}"
OUT="${OUT:-benches/out/gpu-run}"
BIN="$KIT/robust-snn"
mkdir -p "$OUT"
JSONL="$OUT/gpu.jsonl"
ROWS="${ROWS:-1 2 3 4 5 6 7 8 9}"
want() { [[ " $ROWS " == *" $1 "* ]]; }
[ "$ROWS" = "1 2 3 4 5 6 7 8 9" ] && : > "$JSONL"
if [ ! -x "$BIN" ] && [ -f "$KIT.tar.gz" ]; then
  tar -C "$(dirname "$KIT")" -xzf "$KIT.tar.gz"
fi
if [ ! -x "$BIN" ]; then
  echo "gpu.sh: no prebuilt binary at $BIN: run 'bash benches/prepare-gpu.sh' on a machine with crates.io first" >&2
  exit 2
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/robust-snn-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if [ "${SMOKE:-0}" = 1 ]; then
  N=64; NC=16; BIG=32; T=50; TSHORT=5; MID=16; SMALL=4; CPU_E="4 8"; NETS="1 2"; TLIM=120
else
  N=768; NC=128; BIG=10000; T=1000; TSHORT=10; MID=4224; SMALL=132; CPU_E="64 640"; NETS="1 16 128"; TLIM=200
fi

# bench ROW ARGS...: one `bench --json` call per size, each JSON line tagged with the row
bench() {
  local row="$1"; shift
  timeout 120 "$BIN" bench --json "$@" 2>>"$OUT/stderr.log" \
    | sed -e "s/^{/{\"run\":\"$row\",/" | tee -a "$JSONL"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "{\"run\":\"$row\",\"error\":\"bench $* exited $rc\"}" | tee -a "$JSONL"
}
G=(--backend gpu --neurons "$N" --nc "$NC" --mismatch 0.2 --rate 5)

echo "== adapter"; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi dmon -s um -d 1 > "$OUT/dmon.log" 2>&1 &   # row 10: where the wall time goes
  DMON=$!
fi

if want 1; then
  echo "== row 1: E = $BIG at T = $TSHORT, 250, $T ($T twice): host fixed cost, slope, noise"
  for t in "$TSHORT" 250 "$T" "$T"; do bench 1 "${G[@]}" --instances "$BIG" --steps "$t"; done
fi
if want 2; then
  echo "== row 2: latency-bound against saturated"
  for e in "$SMALL" 1056 20000; do
    [ "${SMOKE:-0}" = 1 ] && e=$(( e / 100 + 1 ))
    for t in "$TSHORT" "$T"; do bench 2 "${G[@]}" --instances "$e" --steps "$t"; done
  done
fi
if want 3; then
  echo "== row 3: resident workgroups per SM"
  for e in 792 1056 1320; do
    [ "${SMOKE:-0}" = 1 ] && e=$(( e / 100 ))
    for t in "$TSHORT" 200; do bench 3 "${G[@]}" --instances "$e" --steps "$t"; done
  done
fi
if want 4; then
  echo "== row 4: per-spike against fixed cost (rates 3, 5, 15 Hz)"
  for r in 3 5 15; do
    for t in "$TSHORT" "$T"; do bench 4 --backend gpu --neurons "$N" --nc "$NC" --mismatch 0.2 --rate "$r" --instances "$MID" --steps "$t"; done
  done
fi
if want 5; then
  echo "== row 5: readout width (Nc 32 against $NC)"
  bench 5 --backend gpu --neurons "$N" --nc 32 --mismatch 0.2 --rate 5 --instances "$MID" --steps "$T"
  bench 5 "${G[@]}" --instances "$MID" --steps "$T"
fi
if want 6; then
  echo "== row 6: N = 320"
  for t in "$TSHORT" "$T"; do bench 6 --backend gpu --neurons 320 --nc "$NC" --mismatch 0.2 --rate 5 --instances "$BIG" --steps "$t"; done
fi
if want 7; then
  echo "== row 7: the host's CPU engine"
  bench 7 --backend cpu --neurons "$N" --nc "$NC" --mismatch 0.2 --rate 5 --instances "${CPU_E// /,}" --steps "$T"
fi
if want 8; then
  echo "== row 8: CPU/GPU agreement (prebuilt test binaries)"
  for t in "$KIT"/tests/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    s=$(date +%s.%N)
    timeout "$TLIM" "$t" --test-threads=1 > "$OUT/test-$name.log" 2>&1
    rc=$?
    secs=$(awk "BEGIN{print $(date +%s.%N) - $s}")
    res=$(grep -E "^test result" "$OUT/test-$name.log" | tail -n 1 | sed 's/"/\\"/g')
    echo "{\"run\":\"8\",\"test_binary\":\"$name\",\"rc\":$rc,\"seconds\":$secs,\"result\":\"$res\"}" | tee -a "$JSONL"
  done
fi
if want 9; then
  echo "== row 9: learning on the GPU, 1 epoch of 50 trials, networks $NETS"
  for k in $NETS; do
    d="$OUT/train-$k"; rm -rf "$d"; mkdir -p "$d"
    [ -d "$KIT/teacher" ] && cp -r "$KIT/teacher" "$d/teacher"
    extra=(); [ "${SMOKE:-0}" = 1 ] && extra=(--set training.samples_per_epoch=4 --set training.val_trials=2 --set training.test_trials=2 --set teacher.epochs=1)
    s=$(date +%s.%N)
    timeout "$TLIM" "$BIN" train --config configs/xor-plain.toml --out "$d" --backend gpu --networks "$k" \
      --set training.epochs=1 --set training.samples_per_epoch=50 --set training.val_trials=10 --set training.test_trials=10 \
      "${extra[@]}" > "$d/log.txt" 2>&1
    rc=$?
    secs=$(awk "BEGIN{print $(date +%s.%N) - $s}")
    train_s=$(python3 -c "import json;print(json.load(open('$d/snn/metrics.json')).get('train_seconds'))" 2>/dev/null || echo null)
    echo "{\"run\":\"9\",\"networks\":$k,\"rc\":$rc,\"wall_seconds\":$secs,\"train_seconds\":${train_s:-null}}" | tee -a "$JSONL"
  done
fi
[ -n "${DMON:-}" ] && kill "$DMON" 2>/dev/null

echo "== summary"
python3 - "$JSONL" <<'EOF' | tee "$OUT/summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| run | backend | instances | N | steps | rate Hz | wall s | kernel s | setup s | neuron-steps/s | device bytes/instance |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "neuron_steps_per_s" in r:
        k = r.get("kernel_seconds")
        db = r.get("device_bytes")
        per = f"{db / r['instances']:.0f}" if db else ""
        print(f"| {r['run']} | {r['backend']} | {r['instances']} | {r['neurons']} | {r['steps']} | {r['mean_rate_hz']:.1f} | "
              f"{r['wall_seconds']:.3f} | {'' if k is None else f'{k:.3f}'} | {r['setup_seconds']:.2f} | {r['neuron_steps_per_s']:.3e} | {per} |")
others = [r for r in rows if "neuron_steps_per_s" not in r]
if others:
    print()
    for r in others:
        print("- " + json.dumps(r))
EOF
echo "JSON lines in $JSONL"
