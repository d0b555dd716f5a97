#!/usr/bin/env bash
# The README's dashboard picture, from a real run of the cluster view: three computing nodes on
# this host, two mains in two processes (the MLP by FedAvg over 4 rounds, AML 10-class), and
# `main-node status --serve` in a third; headless Chromium's screenshot of the status page
# (1280 px wide) once both mains printed their tables. Writes docs/dashboard.png.
#
#   scripts/dashboard-shot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/dashboard.png}
cargo build --release --quiet -p main-node -p computing-node
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome) || {
  echo "needs chromium (apt-get install chromium)" >&2
  exit 1
}
source scripts/lease-domain.sh
lease_domain
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
net=(--domain "$domain" --network localhost)
for i in 1 2 3; do
  target/release/computing-node "${net[@]}" --name "Node$i" >/dev/null 2>&1 &
  pids+=($!)
done
status=$(mktemp)
target/release/main-node "${net[@]}" status --serve 127.0.0.1:0 --for 10m >"$status" 2>&1 &
pids+=($!)
logs=()
for model in "mlp --rounds 4" "aml"; do
  log=$(mktemp)
  logs+=("$log")
  # shellcheck disable=SC2086 # the model's flags are words
  target/release/main-node "${net[@]}" train --model $model --jobs 3 --wait-nodes 3 --limit 6000 \
    --linger 10m >"$log" 2>&1 &
  pids+=($!)
done
for log in "${logs[@]}"; do
  for _ in $(seq 600); do
    grep -q "^wall time" "$log" && break
    sleep 0.5
  done
  grep -q "^wall time" "$log" || { cat "$log"; echo "training did not finish" >&2; exit 1; }
done
url=$(sed -n 's/^dashboard at //p' "$status" | head -1)
# The mains publish their summaries once a second: give the last one time to arrive.
sleep 2
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=4000 \
  --window-size=1280,1000 --screenshot="$out" "$url" 2>/dev/null
echo "written to $out"
