#!/usr/bin/env bash
# Builds the Fast DDS test peer (an AML-IP v0.3 look-alike on the wire, see peer.cpp) against
# Debian's Fast DDS 2.9: `apt-get install libfastrtps-dev libfastcdr-dev` first (.ci/run does).
# The binary goes to target/fastdds-peer/peer, where the interop tests look for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/fastdds-peer
mkdir -p "$out"
if [ ! -f /usr/include/fastdds/dds/domain/DomainParticipant.hpp ]; then
  echo "Fast DDS headers not found: apt-get install libfastrtps-dev libfastcdr-dev" >&2
  exit 1
fi
g++ -std=c++17 -O2 -Wall -Wextra -o "$out/peer.new" interop/fastdds-peer/peer.cpp \
  -lfastrtps -lfastcdr -lpthread
mv "$out/peer.new" "$out/peer"
echo "built $out/peer"
