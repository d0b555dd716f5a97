#!/usr/bin/env bash
# Runs the README's Python example (examples/python/mlp_job.py) as a user would: a venv with
# numpy and safetensors from PyPI, a real computing-node process, and the script, which writes
# an mlp_train job, sends it with main-node, and checks the trained network it gets back.
#
#   scripts/python-job.sh        (builds the release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
# --workspace: the feature set the test command built with, so nothing is built again.
cargo build --release --quiet --workspace
venv=target/pyvenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check numpy safetensors
source scripts/lease-domain.sh
lease_domain
RUST_LOG=warn target/release/computing-node --domain "$domain" --network localhost &
node=$!
trap 'kill $node 2>/dev/null || true; rm -f job.safetensors solution.safetensors' EXIT
"$venv/bin/python" examples/python/mlp_job.py "$domain"
