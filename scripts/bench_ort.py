"""onnxruntime on this host, for scripts/bench-inference.sh: latency (one run at a time) and
throughput (back-to-back runs) of an ONNX file on random inputs of a batch size, the same
measurements `main-node infer --bench` makes through amlip. Prints one JSON line.

    python bench_ort.py MODEL.onnx BATCH REQUESTS
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

path, batch, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
shape = [batch] + [int(d) for d in inp.shape[1:]]
x = np.random.default_rng(0).random(shape, dtype=np.float32)
feeds = {inp.name: x}
for _ in range(5):
    sess.run(None, feeds)
lat = []
for _ in range(requests):
    t = time.perf_counter()
    sess.run(None, feeds)
    lat.append((time.perf_counter() - t) * 1e3)
lat.sort()
t = time.perf_counter()
for _ in range(requests):
    sess.run(None, feeds)
rate = requests / (time.perf_counter() - t)
print(json.dumps({
    "batch": batch, "requests": requests,
    "latency_ms_p50": lat[len(lat) // 2], "latency_ms_p90": lat[int((len(lat) - 1) * 0.9)],
    "requests_per_s": rate, "samples_per_s": rate * batch,
}))
