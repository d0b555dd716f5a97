#!/usr/bin/env bash
# Runs one test of amlip-core's `it` binary N times in a row under two `yes` burners (a loaded
# 2-core CI machine), each run bounded by 400 s; prints each run's time, then the count of
# failures and of runs over 30 s. Issue 25's hunt for a stalled job:
#   scripts/stall-loop.sh 200 protocol::three_mains_five_computing_nodes_twenty_jobs_each
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
test=${2:-protocol::three_mains_five_computing_nodes_twenty_jobs_each}
cargo test --release -p amlip-core --test it --no-run --quiet 2>/dev/null
bin=$(ls -t target/release/deps/it-* | grep -v '\.d$' | while read -r b; do
  if "$b" --list 2>/dev/null | grep -q "^$test: test"; then echo "$b"; break; fi
done)
[ -n "$bin" ] || { echo "no it binary lists $test" >&2; exit 1; }
yes >/dev/null & y1=$!
yes >/dev/null & y2=$!
trap 'kill $y1 $y2 2>/dev/null' EXIT
fails=0 slow=0
for i in $(seq 1 "$n"); do
  start=$(date +%s.%N)
  timeout 400 "$bin" --exact "$test" --test-threads 1 >/tmp/stall-run.log 2>&1
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  echo "run $i rc $rc secs $secs"
  [ $rc -eq 0 ] || { fails=$((fails + 1)); cp /tmp/stall-run.log "/tmp/stall-fail-$i.log"; }
  [ "$(echo "$secs > 30" | bc)" = 1 ] && slow=$((slow + 1))
done
echo "$n runs: $fails failed, $slow over 30 s"
