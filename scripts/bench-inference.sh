#!/usr/bin/env bash
# Inference through amlip against onnxruntime running the same ONNX file locally, in one run:
# for the SmartSim CNN (datasets/fixtures/onnx/cnn.onnx) and the dense 784-128-10 MLP
# (dense.onnx), batch 1 and batch 64: latency (one request in flight, p50) and throughput
# (all requests in flight), with one and with two inference nodes (`computing-node --model`)
# on this host, loopback only. onnxruntime (from PyPI, into a venv under scripts/out/ortenv
# unless ORT_PYTHON names a Python that has it) runs with its default threads (all cores).
# Prints a table, with issue 28's target beside each row (batch 1: latency within 0.3 ms of
# onnxruntime's for the MLP, 0.5 ms for the CNN; batch 64: throughput >= 50% of onnxruntime's
# with one node, 60% with two), and writes scripts/out/bench-inference.json.
#
#   scripts/bench-inference.sh [requests per measurement, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-300}
cargo build --release --workspace --quiet
mkdir -p scripts/out
py=${ORT_PYTHON:-scripts/out/ortenv/bin/python}
if [ ! -x "$py" ]; then
  python3 -m venv scripts/out/ortenv
  scripts/out/ortenv/bin/pip install -q numpy onnxruntime
fi
. scripts/lease-domain.sh
lease_domain
models=datasets/fixtures/onnx
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start_node() {
  ./target/release/computing-node --domain "$domain" --network localhost --name "Bench$1" \
    --model cnn=$models/cnn.onnx --model mlp=$models/dense.onnx >"scripts/out/bench-inference-node$1.log" 2>&1 &
  pids+=($!)
}
amlip() { # model batch
  ./target/release/main-node --domain "$domain" --network localhost infer "$1" --bench \
    --batch "$2" --requests "$requests" --json 2>/dev/null
}
out=scripts/out/bench-inference.json
: >"$out"
printf '%-5s %5s %5s | %10s %10s %7s | %10s %10s %7s | %s\n' model batch nodes \
  'amlip ms' 'ort ms' 'diff' 'amlip r/s' 'ort r/s' 'ratio' 'target (issue 28)'
start_node 1
for nodes in 1 2; do
  [ "$nodes" = 2 ] && start_node 2
  for m in cnn mlp; do
    file=$models/cnn.onnx; [ "$m" = mlp ] && file=$models/dense.onnx
    for b in 1 64; do
      ours=$(amlip "$m" "$b")
      ort=$("$py" scripts/bench_ort.py "$file" "$b" "$requests")
      echo "{\"nodes\": $nodes, \"amlip\": $ours, \"onnxruntime\": $ort}" >>"$out"
      python3 - "$m" "$b" "$nodes" "$ours" "$ort" <<'PY'
import json, sys
m, b, n, a, o = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
diff = a['latency_ms_p50'] - o['latency_ms_p50']
ratio = a['requests_per_s'] / o['requests_per_s']
# Batch 1 is about latency, batch 64 about throughput.
if b == "1":
    bound = 0.3 if m == "mlp" else 0.5
    target = f"diff <= +{bound} ms: {'met' if diff <= bound else 'not met'}"
else:
    bound = 0.5 if n == "1" else 0.6
    target = f"ratio >= {bound}x: {'met' if ratio >= bound else 'not met'}"
print(f"{m:<5} {b:>5} {n:>5} | {a['latency_ms_p50']:>10.2f} {o['latency_ms_p50']:>10.2f} "
      f"{diff:>+7.2f} | {a['requests_per_s']:>10.1f} "
      f"{o['requests_per_s']:>10.1f} {ratio:>6.2f}x | {target}")
PY
    done
  done
done
echo "written to $out"
