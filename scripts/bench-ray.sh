#!/usr/bin/env bash
# Tiny-job throughput, amlip against Ray actors, interleaved in one run (Ray from PyPI into a
# venv under scripts/out/rayenv unless RAY_PYTHON names a Python that has it; the first run
# downloads it). Each round runs amlip's
# `bench --nodes 4` (4 computing-node processes, one main) and then 4 Ray actors on the same
# 16-byte upper-case jobs, and prints both rates and their ratio.
#
#   scripts/bench-ray.sh [jobs per round, default 20000] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-20000} rounds=${2:-3}
cargo build --release --workspace --quiet
mkdir -p scripts/out
# RAY_PYTHON: a Python that already has Ray (skips the venv).
py=${RAY_PYTHON:-scripts/out/rayenv/bin/python}
if [ ! -x "$py" ]; then
  python3 -m venv scripts/out/rayenv
  scripts/out/rayenv/bin/pip install -q "ray==2.*"
fi
. scripts/lease-domain.sh
lease_domain
for r in $(seq "$rounds"); do
  ours=$(./target/release/main-node --domain "$domain" --network localhost bench --sizes 1KB \
    --jobs 1 --warmup 0 --nodes 4 --tiny-jobs "$jobs" --first-job-trials 0 2>/dev/null |
    awk '$1 == 4 { print $2 }')
  ray=$("$py" scripts/ray_tiny.py "$jobs" 4 2>/dev/null |
    sed -n 's/.*: \([0-9]*\) jobs\/s/\1/p')
  echo "round $r: amlip $ours jobs/s, Ray actors $ray jobs/s, amlip/Ray $(python3 -c "print(f'{$ours/$ray:.1f}x')")"
done
