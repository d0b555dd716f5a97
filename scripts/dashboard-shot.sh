#!/usr/bin/env bash
# The README's dashboard picture, from a real run: three computing nodes on this host, a main
# training the MLP for 4 rounds over 3 shards with `--serve`, and headless Chromium's screenshot
# of the page (1280 px wide) once the last round is in. Writes docs/dashboard.png.
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
for i in 1 2 3; do
  target/release/computing-node --domain "$domain" --network localhost --name "Node$i" >/dev/null 2>&1 &
  pids+=($!)
done
log=$(mktemp)
target/release/main-node --domain "$domain" --network localhost train --model mlp --rounds 4 \
  --jobs 3 --wait-nodes 3 --limit 6000 --serve 127.0.0.1:0 --linger 10m >"$log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
  grep -q "round 4/4:" "$log" && break
  sleep 0.5
done
grep -q "round 4/4:" "$log" || { cat "$log"; echo "training did not finish" >&2; exit 1; }
url=$(sed -n 's/^dashboard at //p' "$log" | head -1)
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=4000 \
  --window-size=1280,960 --screenshot="$out" "$url" 2>/dev/null
echo "written to $out"
