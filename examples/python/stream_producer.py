# A simulation rank streaming samples from Python to `main-node online` (SmartSim's online
# training): start `main-node online --stream sim --producers 2 --domain D`, then one of these
# per rank.
#   python3 examples/python/stream_producer.py [DOMAIN] [RANK] [ITERATIONS]
import math
import sys

import numpy as np

import amlip

domain = int(sys.argv[1]) if len(sys.argv) > 1 else 166
rank = int(sys.argv[2]) if len(sys.argv) > 2 else 0
iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 20

rng = np.random.default_rng(rank)
with amlip.Producer("sim", rank=rank, domain=domain) as producer:
    for it in range(iterations):
        x = rng.uniform(-math.pi, math.pi, (16, 1))
        producer.publish(it, x, np.sin(x))  # one step of "the simulation"
    produced, drained = producer.finish(readers=1, linger=120)
print(f"rank {rank}: {produced} samples produced, read whole by {drained} trainer(s)")
