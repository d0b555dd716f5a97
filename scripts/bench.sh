#!/usr/bin/env bash
# The transport benchmark: job round trips (1 KB to 50 MB) against a TCP loopback transfer of
# the same bytes measured in the same run, tiny-job throughput with 1, 2 and 4 computing nodes,
# and the time from process start to the first job solved. All on this host, loopback only.
# Prints the tables and writes scripts/out/bench.{json,csv}.
#
#   scripts/bench.sh [extra main-node bench flags, e.g. --jobs 50]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
mkdir -p scripts/out
domain=$(( 100 + RANDOM % 100 ))
exec ./target/release/main-node --domain "$domain" --network localhost bench \
  --json scripts/out/bench.json --csv scripts/out/bench.csv "$@"
