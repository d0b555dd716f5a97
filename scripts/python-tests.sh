#!/usr/bin/env bash
# The Python package as a user gets it: `pip install ./python` (maturin builds the native module
# into the workspace's target directory) into a venv, both packages imported from outside the
# repository, then the pytest suite (python/tests) against real nodes: amlip's binaries and,
# when built, the Fast DDS peer.
#   scripts/python-tests.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
venv=target/pyvenv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
start=$SECONDS
"$venv/bin/pip" install --quiet --disable-pip-version-check ./python pytest safetensors
echo "pip install ./python: $((SECONDS - start)) s"
(cd / && "$venv/bin/python" -c "import amlip, amlip_py; print('import amlip, amlip_py: ok')")
"$venv/bin/python" -m pytest -q python/tests "$@"
