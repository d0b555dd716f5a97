#!/usr/bin/env bash
# amlip from Python against amlip from Rust, in the same run (python/bench/bench.py): a 1 KB
# and a 10 MB round trip, and a Python job kind's throughput on 4 computing nodes.
#   scripts/bench-python.sh [ROUNDS]      (installs the package into target/pyvenv first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
venv="$PWD/target/pyvenv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check ./python
source scripts/lease-domain.sh
lease_domain
"$venv/bin/python" python/bench/bench.py "$domain" --rounds "${1:-200}"
