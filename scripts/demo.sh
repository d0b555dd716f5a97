#!/usr/bin/env bash
# The amlip demo on this host: builds the binaries, starts K computing nodes and a main node on
# a free DDS domain (loopback only), and trains on MNIST across them:
#   1. AML, "is it a 0?", one job per shard, models merged by union;
#   2. a 784-128-10 neural network, federated averaging over 5 rounds.
# Each prints a table (per shard and aggregate: accuracy, balanced accuracy, FPR, FNR, time).
#
#   scripts/demo.sh [K]        K computing nodes (default 3)
#
# Every process started here is stopped on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-3}

echo "== building (release) =="
cargo build --release --workspace --quiet

# A domain no test or other script on this host is using.
source scripts/lease-domain.sh
lease_domain
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "== starting $nodes computing nodes on domain $domain =="
for i in $(seq 0 $((nodes - 1))); do
  RUST_LOG=warn ./target/release/computing-node --name "Computing$i" --domain "$domain" --network localhost &
  pids+=($!)
done

main() { ./target/release/main-node --domain "$domain" --network localhost "$@"; }

echo
echo "== AML: binary classifier for digit 0, $nodes shards =="
main train --model aml --digit 0 --jobs "$nodes" --wait-nodes "$nodes"

echo
echo "== MLP: 10-class neural network, $nodes shards, 5 rounds of federated averaging =="
mkdir -p scripts/out
main train --model mlp --jobs "$nodes" --wait-nodes "$nodes" --plot scripts/out/mlp-rounds.png
