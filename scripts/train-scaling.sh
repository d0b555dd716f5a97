#!/usr/bin/env bash
# Full-data MNIST training with 1, 2 and 4 computing nodes on this host (one shard per node):
# AML digit 0 (40 batches per shard), AML 10-class (20 batches per shard and digit), and the
# 784-128-10 MLP (5 rounds of 2 epochs, FedAvg). Prints accuracy and wall time per run.
#
#   scripts/train-scaling.sh [NODE_COUNTS...]     default: 1 2 4
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1 2 4}")
cargo build --release --workspace --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # nodes label args...
  local nodes=$1 label=$2; shift 2
  local domain=$(( 100 + RANDOM % 100 ))
  local pids=()
  for i in $(seq 0 $((nodes - 1))); do
    RUST_LOG=warn ./target/release/computing-node --name "C$i" --domain "$domain" --network localhost >/dev/null 2>&1 &
    pids+=($!)
  done
  ./target/release/main-node --domain "$domain" --network localhost train --jobs "$nodes" \
    --wait-nodes "$nodes" --report "$out/r.json" "$@" >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
  local agg wall
  agg=$(grep -E '^aggregate' "$out/log" | sed -E 's/^aggregate \([^)]*\) +//' | awk '{print "accuracy " $1 ", balanced " $2}')
  wall=$(grep -E '^wall time' "$out/log" | awk '{print $3}')
  printf "%-28s %2d node(s)   %s   wall %6s s\n" "$label" "$nodes" "$agg" "$wall"
}

for n in ${counts[@]}; do run "$n" "AML digit 0 (40 batches)" --model aml --digit 0 --batches 40; done
for n in ${counts[@]}; do run "$n" "AML 10-class (20 batches)" --model aml --batches 20; done
for n in ${counts[@]}; do run "$n" "MLP 10-class (5x2 epochs)" --model mlp --rounds 5 --epochs 2; done
