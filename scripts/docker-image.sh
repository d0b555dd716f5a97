#!/usr/bin/env bash
# Builds the amlip Docker image (amlip:latest) without pulling anything: the release binaries
# and the shared libraries they link (as ldd lists them on this machine) go onto an empty
# `scratch` image, with MNIST. On a machine that can pull, `docker build -f docker/Dockerfile
# -t amlip .` builds the same image the ordinary way.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-amlip:latest}
cargo build --release --workspace --quiet
ctx=target/docker-context
rm -rf "$ctx" && mkdir -p "$ctx"/{bin,lib,lib64,data}
for bin in main-node computing-node; do
  # Without debug info the image is a fifth of the size.
  strip --strip-debug -o "$ctx/bin/$bin" "target/release/$bin"
done
cp datasets/mnist/*.gz "$ctx/data/"
for lib in $(ldd target/release/main-node target/release/computing-node | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' | sort -u); do
  case "$lib" in
    /lib64/*) cp -L "$lib" "$ctx/lib64/" ;;
    *) cp -L "$lib" "$ctx/lib/" ;;
  esac
done
if ! docker build -q -f docker/Dockerfile.local -t "$tag" "$ctx" >"$ctx.log" 2>&1; then cat "$ctx.log"; exit 1; fi
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
