#!/usr/bin/env bash
# Trusted vs open domain in the same run: 1 KB and 10 MB round trips (job and solution both
# that size; 10 MB goes over the direct path, TLS when trusted) and tiny-job throughput with 2
# computing nodes, each measured by `main-node bench` once in an open domain and once as
# members of a fresh trusted domain. Prints both tables and the ratios (trusted / open; for
# jobs/s open / trusted), and writes scripts/out/bench-trust-{open,trusted}.json.
#
#   scripts/bench-trust.sh [round trips per size, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-30}
cargo build --release -p main-node -p computing-node --quiet
. scripts/lease-domain.sh
lease_domain
mkdir -p scripts/out
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=./target/release/main-node
$bin trust init "$dir/domain" >/dev/null
$bin trust add "$dir/domain" bench --role any >/dev/null
for mode in open trusted; do
  trust=()
  [ "$mode" = trusted ] && trust=(--trust "$dir/domain/bench")
  echo "== $mode domain"
  $bin --domain "$domain" --network localhost "${trust[@]}" bench --sizes 1KB,10MB \
    --jobs "$jobs" --nodes 2 --first-job-trials 0 --json "scripts/out/bench-trust-$mode.json" |
    grep -v "results written"
done
python3 - <<'PY'
import json
o = json.load(open("scripts/out/bench-trust-open.json"))
t = json.load(open("scripts/out/bench-trust-trusted.json"))
def pick(rs, kind, key, val):
    return next(r for r in rs if r["kind"] == kind and r.get(key) == val)
print("\ntrusted vs open (same run)        open      trusted    ratio   target")
for size, name, target in [(1000, "1 KB round trip, ms ", 2.0), (10_000_000, "10 MB round trip, ms", 1.3)]:
    a, b = pick(o, "round_trip", "size", size)["median_ms"], pick(t, "round_trip", "size", size)["median_ms"]
    print(f"{name}           {a:9.3f}  {b:9.3f}  {b/a:6.2f}x  <= {target}x")
a, b = pick(o, "throughput", "computing_nodes", 2)["jobs_per_s"], pick(t, "throughput", "computing_nodes", 2)["jobs_per_s"]
print(f"tiny jobs/s, 2 nodes               {a:9.0f}  {b:9.0f}  {a/b:6.2f}x  (open/trusted)")
PY
