# A computing node whose job kind is a numpy function, and a main that sends it jobs: the
# kind runs in this Python process, next to amlip's built-in kinds.
#   python3 examples/python/numpy_kind.py [DOMAIN]
import sys

import numpy as np

import amlip

domain = int(sys.argv[1]) if len(sys.argv) > 1 else 166
node = amlip.ComputingNode("NumpyNode", domain, builtin=True)


@node.kind("normalize")
def normalize(arrays, params):
    """Scales each row of `x` to unit norm (times `scale`); an all-zero row is an error."""
    x = arrays["x"].astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a row of x is all zeros")
    return {"y": x / norms * params.get("scale", 1.0)}, {"rows": len(x)}


print("kinds served:", ", ".join(node.run()))
with node, amlip.MainNode("NumpyMain", domain) as main:
    main.wait_for_nodes(1, timeout=30)
    rng = np.random.default_rng(0)
    batch = main.batch(timeout=30)
    for i in range(8):
        batch.submit_job("normalize", {"x": rng.normal(size=(4, 3))}, {"scale": 2.0}, label=i)
    batch.submit_job("normalize", {"x": np.zeros((2, 3))}, label="zeros")
    for outcome in batch:
        if outcome.ok:
            s = outcome.solution()
            print(f"job {outcome.label}: {s.params['rows']} rows, norms {np.linalg.norm(s['y'], axis=1).round(3)}")
        else:
            print(f"job {outcome.label}: failed: {outcome.error}")
