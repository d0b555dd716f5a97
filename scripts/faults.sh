#!/usr/bin/env bash
# Fault scenarios across hosts: each node in its own container on a bridge network the test
# creates. A main trains AML on MNIST (6 jobs) while a computing node is killed, frozen
# (docker pause), cut off (docker network disconnect) and reconnected, or joins late, or the
# main is restarted. Builds the image first (pulling nothing); prints a table of jobs sent,
# solved, re-sent, duplicates dropped and aggregated, and the time of each scenario.
# About 2.5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/docker-image.sh
# --workspace: the feature set `cargo test --workspace` built with, so nothing is rebuilt (with
# -p main-node cargo resolves other features and recompiles tract and the library).
cargo test --release --workspace --test it -- --ignored --nocapture --test-threads 1 docker::
