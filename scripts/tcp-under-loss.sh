#!/usr/bin/env bash
# How plain TCP fares on the two-host link of bench-hosts.sh with packet loss, without amlip:
# 40 transfers of 10 MB one way (plus a 1-byte ack), then 40 echoes of 10 MB both ways, between
# two network namespaces joined by a veth pair, each end dropping --loss of its input (default
# 5%). Shows how often a transfer waits for a retransmission timeout, which is what the lossy
# figures of bench-hosts.sh measure. Needs root; removes the namespaces when it ends.
#
#   scripts/tcp-under-loss.sh [--loss 0.05]
set -euo pipefail
loss=0.05
[ "${1:-}" = --loss ] && loss=$2
[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 2; }
a=tcplA$$ b=tcplB$$
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$a"; ip netns add "$b"
ip link add "ta$$" netns "$a" type veth peer name "tb$$" netns "$b"
ip -n "$a" addr add 10.79.0.1/24 dev "ta$$"; ip -n "$b" addr add 10.79.0.2/24 dev "tb$$"
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$( [ "$ns" = "$a" ] && echo "ta$$" || echo "tb$$")" up
  ip netns exec "$ns" iptables -A INPUT -m statistic --mode random --probability "$loss" -j DROP
done
probe=$(mktemp --suffix=.py)
cat >"$probe" <<'EOF'
import socket, statistics, sys, time
mode, shape = sys.argv[1], sys.argv[2]
N, ADDR = 10_000_000, ("10.79.0.2", 48113)
def recvn(c, view):
    got = 0
    while got < N:
        n = c.recv_into(view[got:])
        if n == 0:
            sys.exit(0)
        got += n
if mode == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(ADDR); s.listen(1)
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(N); view = memoryview(buf)
    while True:
        recvn(c, view)
        c.sendall(buf if shape == "echo" else b"k")
else:
    c = socket.create_connection(ADDR, timeout=60); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data, buf = b"a" * N, bytearray(N); view = memoryview(buf); ts = []
    for _ in range(40):
        t = time.perf_counter(); c.sendall(data)
        recvn(c, view) if shape == "echo" else c.recv(1)
        ts.append((time.perf_counter() - t) * 1e3)
    slow = sum(x > 150 for x in ts)
    print(f"{shape:>7}: median {statistics.median(ts):.0f} ms, {slow} of 40 over 150 ms:",
          " ".join(f"{x:.0f}" for x in ts))
EOF
for shape in oneway echo; do
  ip netns exec "$b" python3 "$probe" server "$shape" & server=$!
  for _ in $(seq 50); do ip netns exec "$b" ss -ltn | grep -q 48113 && break; sleep 0.1; done
  ip netns exec "$a" python3 "$probe" client "$shape"
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
done
rm -f "$probe"
