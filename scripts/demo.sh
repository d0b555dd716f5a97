#!/usr/bin/env bash
# The amlip demo on this host: builds the binaries, starts K computing nodes and a main node
# on a free DDS domain (loopback only), and shows every job's solution and who solved it.
#
#   scripts/demo.sh [K]        K computing nodes (default 3)
#
# Every process started here is stopped on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-3}

echo "== building (release) =="
cargo build --release --workspace --quiet

# A domain nobody else on this host is likely using (AML-IP's default is 166).
domain=$(( 10 + RANDOM % 90 ))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "== starting $nodes computing nodes on domain $domain =="
for i in $(seq 0 $((nodes - 1))); do
  RUST_LOG=warn ./target/release/computing-node --name "Computing$i" --domain "$domain" \
    --network localhost --work-time 50ms &
  pids+=($!)
done

echo "== main node: 12 jobs, $nodes in flight =="
./target/release/main-node --domain "$domain" --network localhost \
  jobs --count 12 --size 1KB --in-flight "$nodes" --wait-nodes "$nodes"
