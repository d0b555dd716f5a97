#!/usr/bin/env bash
# amlip against the Fast DDS peer (an AML-IP v0.3 look-alike, interop/fastdds-peer), every cell
# beside peer-to-peer (Fast DDS main to Fast DDS computing node) measured in the same run, on
# loopback: median job round trip (job and equal-size solution), the total time of 20 jobs
# queued at once by an async peer main, and the first job of AML-IP's workload demo main (async,
# `AML-MainNode`, 3 jobs 0.1 s apart) over 20 fresh starts (median of their first jobs).
#
#   scripts/interop-bench.sh [SIZES]     e.g. scripts/interop-bench.sh 1,1000,1000000
#
# Needs the peer (`apt-get install libfastrtps-dev libfastcdr-dev`, then
# interop/fastdds-peer/build.sh). Writes scripts/out/interop-bench.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-1,1000,1000000}
cargo build --release --quiet -p main-node -p computing-node
[ -x target/fastdds-peer/peer ] || interop/fastdds-peer/build.sh
source scripts/lease-domain.sh
lease_domain
peer=target/fastdds-peer/peer
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT INT TERM

# Starts a computing node of `kind` (peer or amlip) and waits until it is up.
start_computing() {
  local log; log=$(mktemp)
  if [ "$1" = peer ]; then
    $peer computing --domain "$domain" >"$log" 2>&1 &
    pids+=($!)
    until grep -q "^ready" "$log"; do sleep 0.05; done
  else
    RUST_LOG=warn target/release/computing-node --domain "$domain" --network localhost >"$log" 2>&1 &
    pids+=($!)
    until grep -q "serving" "$log"; do sleep 0.05; done
  fi
}

# Median round trip (ms) of `jobs` jobs of `size` bytes from a main of `kind`.
median_ms() {
  local kind=$1 jobs=$2 size=$3
  if [ "$kind" = peer ]; then
    $peer main --domain "$domain" --jobs "$jobs" --size "$size" --timeout 600 |
      awk '/^summary/ {print $7}'
  else
    RUST_LOG=warn target/release/main-node --domain "$domain" --network localhost jobs --count "$jobs" \
      --size "$size" --wait-nodes 1 --timeout 600s --quiet |
      awk '/jobs solved/ {for (i = 1; i <= NF; i++) if ($i == "median") print $(i + 1)}'
  fi
}

mkdir -p scripts/out
csv=scripts/out/interop-bench.csv
echo "cell,size,jobs,median_ms,peer_to_peer_ms,ratio" >"$csv"
printf "%-34s %10s %12s %14s %7s\n" "cell" "size" "median (ms)" "peer-peer (ms)" "ratio"
for size in ${sizes//,/ }; do
  jobs=20
  [ "$size" -ge 1000000 ] && jobs=5
  start_computing peer
  ref=$(median_ms peer "$jobs" "$size")
  cleanup
  for cell in "peer main -> amlip computing" "amlip main -> peer computing"; do
    if [[ $cell == peer* ]]; then start_computing amlip; m=$(median_ms peer "$jobs" "$size")
    else start_computing peer; m=$(median_ms amlip "$jobs" "$size"); fi
    cleanup
    ratio=$(awk -v a="$m" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
    printf "%-34s %10s %12s %14s %7s\n" "$cell" "$size" "$m" "$ref" "$ratio"
    echo "$cell,$size,$jobs,$m,$ref,$ratio" >>"$csv"
  done
done
# An async peer main: 20 jobs of 1 KB queued at once; the time until the last is solved.
total() {
  $peer main --domain "$domain" --jobs 20 --size 1000 --async --timeout 600 |
    awk '/^summary/ {print $9}'
}
start_computing peer; ref=$(total); cleanup
start_computing amlip; t=$(total); cleanup
ratio=$(awk -v a="$t" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
printf "%-34s %10s %12s %14s %7s\n" "async peer main, 20 x 1 KB (total)" 1000 "$t" "$ref" "$ratio"
echo "async peer main 20 jobs total,1000,20,$t,$ref,$ratio" >>"$csv"
# AML-IP's demo main, started afresh 20 times against one computing node: its first job's time
# (from its submission, the main's discovery of the node included).
first_jobs() {
  for _ in $(seq 20); do
    $peer demo-main --domain "$domain" --timeout 600 | awk '/^job 0 / {print $8}'
  done | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
start_computing peer; ref=$(first_jobs); cleanup
start_computing amlip; t=$(first_jobs); cleanup
ratio=$(awk -v a="$t" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
printf "%-34s %10s %12s %14s %7s\n" "demo main, first job (median of 20)" 16 "$t" "$ref" "$ratio"
echo "demo main first job median of 20,16,1,$t,$ref,$ratio" >>"$csv"
echo "written to $csv"
