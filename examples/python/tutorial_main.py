# AML-IP's "parallelize AML training" tutorial main node, written against AML-IP's Python API
# (`amlip_py`) and unchanged: with `pip install ./python` it runs on amlip. Any amlip
# `computing-node` (or AML-IP's own computing nodes) on the domain trains each shard.
#   python3 examples/python/tutorial_main.py [DOMAIN] [SHARDS]
import gzip
import json
import sys
import threading

from amlip_py.node.AsyncMainNode import AsyncMainNode
from amlip_py.types.JobDataType import JobDataType

domain = int(sys.argv[1]) if len(sys.argv) > 1 else 166
shards = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def idx(path):
    data = gzip.open(path).read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return dims, data[4 + 4 * data[3]:]


(_, rows, cols), images = idx("datasets/mnist/train-images.idx3-ubyte.gz")
_, labels = idx("datasets/mnist/train-labels.idx1-ubyte.gz")
size, per_shard = rows * cols, 100

model = {}
done = threading.Condition()
solved = []


def solution_received(solution, task_id, server_id):
    # As the tutorial: each solution is a JSON dict, merged into the model.
    with done:
        model.update(json.loads(solution.to_string()))
        solved.append(task_id)
        print(f"solution for task {task_id} from {server_id.name()}", flush=True)
        done.notify_all()


main = AsyncMainNode("MainNode", callback=solution_received, domain=domain)
for s in range(shards):
    first = s * per_shard
    x = [list(images[(first + i) * size:(first + i + 1) * size]) for i in range(per_shard)]
    y = list(labels[first:first + per_shard])
    main.request_job_solution(JobDataType("x: " + json.dumps(x) + " y: " + json.dumps(y)))
with done:
    if not done.wait_for(lambda: len(solved) == shards, timeout=300):
        sys.exit(f"only {len(solved)} of {shards} solutions in 300 s")
print(f"model of {len(model)} entries from {shards} shards")
