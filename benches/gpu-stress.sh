#!/usr/bin/env bash
# Stress check of the GPU tests (issue 10): the GPU test binaries ten times in a row, two ways:
#   alone:    each test on its own, one after another, on a quiet machine;
#   together: all tests of all GPU binaries at once, with one core kept busy by a spin loop.
# A result that depended on the machine's load (as when K was adapted to wall time) or on a race
# fails some of these runs. Prints one line per run and a closing "N passed, N failed" line.
#
#   bash benches/gpu-stress.sh            # 10 rounds of each
#   ROUNDS=3 bash benches/gpu-stress.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-10}"
BINS="${BINS:-gpu_engine gpu_learn study}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/robust-snn-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

declare -A EXE
for b in $BINS; do
  EXE[$b]=$(cargo test --release --test "$b" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
done

passed=0
failed=0
record() { # name, status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

for r in $(seq 1 "$ROUNDS"); do
  for b in $BINS; do
    # the GPU tests of the study binary only: the others are CPU work
    filter=""
    [ "$b" = study ] && filter="gpu"
    for t in $("${EXE[$b]}" --list $filter 2>/dev/null | sed -n 's/: test$//p'); do
      s=0
      "${EXE[$b]}" --exact "$t" -q >/tmp/gpu-stress.log 2>&1 || s=$?
      record "alone round $r: $b::$t" "$s"
      [ "$s" -eq 0 ] || tail -n 20 /tmp/gpu-stress.log
    done
  done
  echo "alone round $r done ($passed passed, $failed failed so far)"
done

for r in $(seq 1 "$ROUNDS"); do
  ( while :; do :; done ) &
  spin=$!
  pids=()
  for b in $BINS; do
    filter=""
    [ "$b" = study ] && filter="gpu"
    "${EXE[$b]}" $filter -q >"/tmp/gpu-stress-$b.log" 2>&1 &
    pids+=("$!:$b")
  done
  for p in "${pids[@]}"; do
    s=0
    wait "${p%%:*}" || s=$?
    record "together round $r: ${p#*:}" "$s"
    [ "$s" -eq 0 ] || tail -n 20 "/tmp/gpu-stress-${p#*:}.log"
  done
  kill "$spin"
  wait "$spin" 2>/dev/null || true
  echo "together round $r done ($passed passed, $failed failed so far)"
done

echo "gpu-stress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
