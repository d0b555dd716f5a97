# SmartSim's client calls over amlip inference: put a tensor, set a model, run it, get the
# output. Start an inference node first: `computing-node --serve-models --domain D`.
#   python3 examples/python/smartsim_client.py [DOMAIN]
import sys

import numpy as np

from amlip import Client

domain = int(sys.argv[1]) if len(sys.argv) > 1 else 166
client = Client(domain=domain, timeout=60)
client.set_model_from_file("cnn", "datasets/fixtures/onnx/cnn.onnx", backend="ONNX", device="CPU")
images = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
client.put_tensor("images", images)
client.run_model("cnn", inputs=["images"], outputs=["scores"])
scores = client.get_tensor("scores")
print("scores", scores.shape, "predicted digits", scores.argmax(axis=1).tolist())
client.stop()
