#!/usr/bin/env bash
# The Python package as a user gets it: `pip install ./python` (maturin builds the native module
# into the workspace's target directory) into a venv, both packages imported from outside the
# repository, then the pytest suite (python/tests) against real nodes: amlip's binaries and,
# when built, the Fast DDS peer.
#   scripts/python-tests.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
# maturin builds the crate alone; any dependency it would build with other features than the
# workspace's is rebuilt (tract and the library, minutes). python/Cargo.toml pins them equal.
features() { cargo tree "$@" -e normal,build -f "{p} [{f}]" --prefix none | sed 's/ (\*)//' | sort -u; }
ours=$(features -p amlip-python)
theirs=$(features --workspace)
extra=$(comm -23 <(echo "$ours") <(echo "$theirs") | grep -v "^amlip-python " || true)
if [ -n "$extra" ]; then
  echo "warning: maturin will rebuild these with other features than the workspace's (see python/Cargo.toml):"
  echo "$extra"
fi
venv="$PWD/target/pyvenv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
start=$SECONDS
"$venv/bin/pip" install --quiet --disable-pip-version-check ./python pytest safetensors
echo "pip install ./python: $((SECONDS - start)) s"
(cd / && "$venv/bin/python" -c "import amlip, amlip_py; print('import amlip, amlip_py: ok')")
"$venv/bin/python" -m pytest -q python/tests "$@"
