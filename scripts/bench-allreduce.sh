#!/usr/bin/env bash
# The seed CNN trained by amlip's all-reduce groups against PyTorch on this machine, in one run:
#  - seconds per MNIST epoch (60,000 images, SGD lr 0.01 momentum 0.5, batch 128 per worker)
#    with 1, 2 and 4 workers (`computing-node` processes, one thread each, on this host), beside
#    PyTorch on 1 and 2 threads (same network, batch 128);
#  - test accuracy after 1 and 2 epochs with 4 workers and the seed's settings, beside PyTorch
#    with the same effective batch (4 x 128 = 512), each the mean of seeds 1, 2 and 3 (one run's
#    accuracy after 117 steps varies by about a point with the seed), and with amlip's defaults
#    (Adam lr 0.001, batch 64 per worker) over 3 epochs;
#  - the ring all-reduce of the 1.2 M parameters against TCP loopback moving the same bytes,
#    and the communication share of a step.
# PyTorch comes from PyPI into scripts/out/torchenv unless TORCH_PYTHON names a Python that has
# it. Prints a table and writes scripts/out/bench-allreduce.json. About 20 minutes on 2 cores.
#
#   scripts/bench-allreduce.sh [--quick]   (--quick: 6,000 images, for trying the script)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=()
if [ "${1:-}" = --quick ]; then limit=(--limit 6000); fi
cargo build --release --workspace --quiet
mkdir -p scripts/out
py=${TORCH_PYTHON:-scripts/out/torchenv/bin/python}
if [ ! -x "$py" ]; then
  python3 -m venv scripts/out/torchenv
  scripts/out/torchenv/bin/pip install -q numpy torch
fi
. scripts/lease-domain.sh
lease_domain
pids=()
stop_nodes() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap stop_nodes EXIT
amlip() { # workers epochs report [train flags...]
  local w=$1 e=$2 r=$3; shift 3
  for i in $(seq 1 "$w"); do
    ./target/release/computing-node --domain "$domain" --network localhost --name "Bench$i" \
      >"scripts/out/bench-allreduce-node$i.log" 2>&1 &
    pids+=($!)
  done
  ./target/release/main-node --domain "$domain" --network localhost train --model cnn \
    --parallel "$w" --epochs "$e" --report "$r" "${limit[@]}" "$@" >"$r.log" 2>&1
  stop_nodes
}
seed=(--optimizer sgd --lr 0.01 --momentum 0.5 --batch 128)
out=scripts/out
echo "amlip: 1, 2, 4 workers (seed settings)..." >&2
amlip 1 1 $out/ar-w1.json "${seed[@]}"
amlip 2 1 $out/ar-w2.json "${seed[@]}"
amlip 4 2 $out/ar-w4.json "${seed[@]}"
amlip 4 2 $out/ar-w4s2.json "${seed[@]}" --seed 2
amlip 4 2 $out/ar-w4s3.json "${seed[@]}" --seed 3
echo "amlip: 4 workers, defaults, 3 epochs..." >&2
amlip 4 3 $out/ar-default.json
echo "PyTorch..." >&2
plimit=(); if [ ${#limit[@]} -gt 0 ]; then plimit=(--limit 6000); fi
"$py" scripts/bench_torch.py --threads 1 --batch 128 --epochs 1 "${plimit[@]}" >$out/torch-t1.jsonl
"$py" scripts/bench_torch.py --threads 2 --batch 128 --epochs 1 "${plimit[@]}" >$out/torch-t2.jsonl
"$py" scripts/bench_torch.py --threads 2 --batch 512 --epochs 2 "${plimit[@]}" >$out/torch-b512.jsonl
"$py" scripts/bench_torch.py --threads 2 --batch 512 --epochs 2 --seed 2 "${plimit[@]}" >$out/torch-b512s2.jsonl
"$py" scripts/bench_torch.py --threads 2 --batch 512 --epochs 2 --seed 3 "${plimit[@]}" >$out/torch-b512s3.jsonl
echo "all-reduce against TCP..." >&2
cargo bench -p amlip-core --bench allreduce --quiet 2>/dev/null | grep '^{' >$out/allreduce.jsonl
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
ar = lambda n: json.load(open(f"{out}/ar-{n}.json"))
jl = lambda n: [json.loads(l) for l in open(f"{out}/{n}.jsonl")]
t1, t2, tb = jl("torch-t1"), jl("torch-t2"), jl("torch-b512")
rows = {}
print("CNN seconds per epoch (60,000 images, batch 128 per worker, 1 thread per worker)")
print(f"{'':28} {'s/epoch':>8}  {'vs torch 1 thread':>17}  {'vs torch 2 threads':>18}  comm share")
for w in (1, 2, 4):
    g = ar(f"w{w}")["generations"][0]
    steps = g["steps"][1] - g["steps"][0]
    epochs = len(ar(f"w{w}")["epochs"])
    s = (g["training_s"] + g["communication_s"]) / epochs
    share = g["communication_s"] / (g["training_s"] + g["communication_s"])
    rows[f"amlip_{w}_workers"] = {"s_per_epoch": s, "comm_share": share, "steps": steps}
    print(f"amlip, {w} worker(s){'':11} {s:8.1f}  {s / t1[0]['seconds']:16.2f}x  {s / t2[0]['seconds']:17.2f}x  {share:9.1%}")
print(f"PyTorch, 1 thread{'':11} {t1[0]['seconds']:8.1f}")
print(f"PyTorch, 2 threads{'':10} {t2[0]['seconds']:8.1f}")
print()
print("test accuracy, seed settings (SGD 0.01 / 0.5), effective batch 512, seeds 1-3: mean [min-max]")
runs_a = [[e["score"] for e in ar(n)["epochs"]] for n in ("w4", "w4s2", "w4s3")]
runs_t = [[e["accuracy"] for e in jl(n)] for n in ("torch-b512", "torch-b512s2", "torch-b512s3")]
mean = lambda xs: sum(xs) / len(xs)
a4 = [mean([r[i] for r in runs_a]) for i in range(2)]
tb_acc = [mean([r[i] for r in runs_t]) for i in range(2)]
for i in range(2):
    ra, rt = [r[i] for r in runs_a], [r[i] for r in runs_t]
    print(f"epoch {i + 1}: amlip 4 workers x 128 {a4[i]:.4f} [{min(ra):.4f}-{max(ra):.4f}]   "
          f"PyTorch batch 512 {tb_acc[i]:.4f} [{min(rt):.4f}-{max(rt):.4f}]   diff {100 * (a4[i] - tb_acc[i]):+.2f} pt")
d = [e["score"] for e in ar("default")["epochs"]]
print("amlip defaults (Adam 0.001, batch 64 per worker), 4 workers: " + ", ".join(f"epoch {i + 1} {a:.4f}" for i, a in enumerate(d)))
print()
print("ring all-reduce of 1,199,882 parameters on loopback")
allr = [json.loads(l) for l in open(f"{out}/allreduce.jsonl")]
for r in allr:
    print(f"{r['workers']} workers: {r['allreduce_ms']:.2f} ms; one TCP stream of the {r['bytes_per_worker'] / 1e6:.1f} MB a worker sends {r['tcp_ms']:.2f} ms ({r['ratio']:.2f}x); "
          f"{r['workers']} such streams at once {r['tcp_all_ms']:.2f} ms ({r['ratio_all']:.2f}x)")
json.dump({"speed": rows, "torch_s_per_epoch": {"1_thread": t1[0]["seconds"], "2_threads": t2[0]["seconds"]},
           "accuracy_seed": {"amlip_4x128": runs_a, "torch_512": runs_t, "mean_amlip": a4, "mean_torch": tb_acc}, "accuracy_defaults": d, "allreduce": allr},
          open(f"{out}/bench-allreduce.json", "w"), indent=1)
PY
