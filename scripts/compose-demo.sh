#!/usr/bin/env bash
# The MNIST demo as a Docker Compose cluster: one main node and N computing nodes (default 3),
# each in its own container on a private bridge network, finding each other by DDS discovery.
# Builds the image first (pulling nothing). Exits with the main node's exit code; removes the
# containers and network afterwards.
#
#   scripts/compose-demo.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
scripts/docker-image.sh
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
project=amlip-demo-$$
trap 'compose -f docker/compose.yaml -p "$project" down --remove-orphans >/dev/null 2>&1 || true' EXIT
export AMLIP_JOBS=$n
compose -f docker/compose.yaml -p "$project" up --no-color --scale computing="$n" --exit-code-from main
