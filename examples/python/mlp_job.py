# An amlip job from Python with numpy and the safetensors package only: train the 784-128-10
# network on 6000 MNIST images on a computing node, then read the trained weights back.
# Run (with `computing-node --domain 7 --network localhost` running):
#   python3 examples/python/mlp_job.py 7
import gzip, json, subprocess, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

def idx(path):  # an IDX file (MNIST's format) as an array
    data = gzip.open(path).read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)

images = idx("datasets/mnist/train-images.idx3-ubyte.gz")[:6000].reshape(-1, 784)
labels = idx("datasets/mnist/train-labels.idx1-ubyte.gz")[:6000]
rng = np.random.default_rng(1)
net = {"w1": rng.normal(0, (2 / 784) ** 0.5, (784, 128)).astype(np.float32),
       "b1": np.zeros(128, np.float32),
       "w2": rng.normal(0, (2 / 128) ** 0.5, (128, 10)).astype(np.float32),
       "b2": np.zeros(10, np.float32)}
params = {"round": 1, "shard": 0, "shards": 1, "seed": 1,
          "epochs": 2, "batch": 64, "learning_rate": 0.05, "momentum": 0.9}
job = save({"images": images, "labels": labels, **net},
           metadata={"amlip.kind": "mlp_train", "amlip.version": "1",
                     "amlip.params": json.dumps(params)})
open("job.safetensors", "wb").write(job)

# Any amlip main node can send it; here the shipped one.
domain = sys.argv[1] if len(sys.argv) > 1 else "7"
subprocess.run(["target/release/main-node", "--domain", domain, "--network", "localhost",
                "send", "--file", "job.safetensors", "--out", "solution.safetensors"], check=True)

with safe_open("solution.safetensors", "np") as f:
    info = json.loads(f.metadata()["amlip.params"])
    w = {k: f.get_tensor(k) for k in ("w1", "b1", "w2", "b2")}
test = idx("datasets/mnist/t10k-images.idx3-ubyte.gz").reshape(-1, 784) / 255.0
truth = idx("datasets/mnist/t10k-labels.idx1-ubyte.gz")
hidden = np.maximum(test @ w["w1"] + w["b1"], 0)
accuracy = ((hidden @ w["w2"] + w["b2"]).argmax(1) == truth).mean()
print(f"trained on {info['samples']} images, loss {info['loss']:.3f}, test accuracy {accuracy:.3f}")
assert accuracy > 0.85
