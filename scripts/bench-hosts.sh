#!/usr/bin/env bash
# The two-host benchmark (needs root): amlip against a plain TCP transfer of the same bytes
# over the same link, in the same run.
#
# Makes two network namespaces joined by a veth pair, runs the main in one and the computing
# nodes (and the TCP echo server of the reference) in the other: first on a clean link, then
# with packet loss on both ends (iptables `statistic` random drop; this kernel has no netem).
# Then the same figures on loopback. The namespaces go when the script ends, however it ends.
# Prints every figure with its ratio to TCP, the target it is held to, and writes
# scripts/out/bench-hosts-*.json.
#
#   scripts/bench-hosts.sh [--loss 0.05] [--jobs 20] [--tiny 20000]
set -euo pipefail
cd "$(dirname "$0")/.."

loss=0.05 jobs=20 tiny=20000
while [ $# -gt 0 ]; do
  case $1 in
    --loss) loss=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --tiny) tiny=$2; shift 2 ;;
    *) echo "usage: $0 [--loss P] [--jobs N] [--tiny N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root (ip netns, iptables)" >&2; exit 2; }
command -v iptables >/dev/null || { echo "$0: needs iptables (apt-get install iptables)" >&2; exit 2; }

cargo build --release --workspace --quiet
mkdir -p scripts/out
. scripts/lease-domain.sh
lease_domain

a=amlipA$$ b=amlipB$$ va=va$$ vb=vb$$
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$a"
ip netns add "$b"
ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
for side in "$a:$va:10.77.0.1" "$b:$vb:10.77.0.2"; do
  IFS=: read -r ns dev ip <<<"$side"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev "$dev"
  ip -n "$ns" link set "$dev" up
  # DDS discovery is multicast: route it over the link.
  ip -n "$ns" route add 224.0.0.0/4 dev "$dev"
done

bench() { # bench OUT_NAME [bench flags...]: the main in $a, computing nodes in $b
  local out=$1; shift
  ip netns exec "$a" ./target/release/main-node --domain "$domain" --network 10.77.0.1 bench \
    --computing-netns "$b" --computing-ip 10.77.0.2 --first-job-trials 0 \
    --json "scripts/out/bench-hosts-$out.json" "$@"
}

echo "== two hosts (veth), no loss"
bench clean --sizes 1KB,1MB,10MB --jobs "$jobs" --nodes 4 --tiny-jobs "$tiny"

echo
echo "== two hosts (veth), $loss loss each way"
for ns in "$a" "$b"; do
  ip netns exec "$ns" iptables -A INPUT -m statistic --mode random --probability "$loss" -j DROP
done
bench loss --sizes 1MB,10MB --jobs "$jobs" --nodes 0

echo
echo "== loopback"
./target/release/main-node --domain "$domain" --network localhost bench --first-job-trials 0 \
  --sizes 1KB,10MB --jobs "$jobs" --nodes 4 --tiny-jobs "$tiny" \
  --json scripts/out/bench-hosts-loopback.json

python3 - "$loss" <<'EOF'
import json, sys
loss = sys.argv[1]
def load(name):
    return json.load(open(f"scripts/out/bench-hosts-{name}.json"))
def trip(rs, size):
    return next(r for r in rs if r["kind"] == "round_trip" and r["size"] == size)
def tput(rs, n):
    return next(r for r in rs if r["kind"] == "throughput" and r["computing_nodes"] == n)
clean, lossy, loop = load("clean"), load("loss"), load("loopback")
rows = []
def add(what, r, target, ok):
    rows.append((what, f'{r["median_ms"]:.3f} ms', f'{r["tcp_median_ms"]:.3f} ms',
                 f'{r["ratio_to_tcp"]:.2f}x', target, "met" if ok else "MISSED"))
r = trip(clean, 10_000_000)
add("two hosts, 10 MB", r, "rate >= 50% of TCP (<= 2x time)", r["ratio_to_tcp"] <= 2)
r = trip(lossy, 10_000_000)
add(f"two hosts, {loss} loss, 10 MB", r, "<= 3x TCP's time", r["ratio_to_tcp"] <= 3)
r = trip(loop, 10_000_000)
add("loopback, 10 MB", r, "rate >= 80% of TCP (<= 1.25x)", r["ratio_to_tcp"] <= 1.25)
r = trip(loop, 1_000)
add("loopback, 1 KB", r, "<= 4x TCP's time", r["ratio_to_tcp"] <= 4)
print()
print(f'{"figure":<32} {"amlip":>12} {"TCP":>12} {"ratio":>8}  {"target":<34} ')
for w, o, t, ratio, target, ok in rows:
    print(f"{w:<32} {o:>12} {t:>12} {ratio:>8}  {target:<34} {ok}")
for name, rs in (("loopback", loop), ("two hosts", clean)):
    t = tput(rs, 4)
    ok = "met" if t["jobs_per_s"] >= 15000 else "MISSED"
    print(f'{"tiny jobs, 4 nodes, " + name:<32} {t["jobs_per_s"]:>8.0f} jobs/s {"":>16}  '
          f'{">= 15,000 jobs/s (idle machine)":<34} {ok}')
EOF
