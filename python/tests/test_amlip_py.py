"""AML-IP's Python API (`amlip_py`) on amlip: every class the API lists, called as AML-IP's
programs call it, against amlip's binaries, the Fast DDS peer and each other."""
from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from conftest import ROOT, binary, peer_or_skip, wait_until

from amlip_py.node.AsyncComputingNode import AsyncComputingNode, JobReplier, JobReplierLambda
from amlip_py.node.AsyncEdgeNode import AsyncEdgeNode, InferenceListenerLambda
from amlip_py.node.AsyncInferenceNode import AsyncInferenceNode, InferenceReplierLambda
from amlip_py.node.AsyncMainNode import AsyncMainNode, SolutionListener, SolutionListenerLambda
from amlip_py.node.ComputingNode import ComputingNode, JobLambda, JobListener
from amlip_py.node.EdgeNode import EdgeNode
from amlip_py.node.InferenceNode import InferenceLambda, InferenceNode
from amlip_py.node.MainNode import MainNode
from amlip_py.node.ModelManagerReceiverNode import ModelListener, ModelManagerReceiverNode
from amlip_py.node.ModelManagerSenderNode import ModelManagerSenderNode
from amlip_py.node.StatusNode import StatusLambda, StatusNode
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.InferenceDataType import InferenceDataType
from amlip_py.types.InferenceSolutionDataType import InferenceSolutionDataType
from amlip_py.types.JobDataType import JobDataType
from amlip_py.types.JobSolutionDataType import JobSolutionDataType
from amlip_py.types.ModelReplyDataType import ModelReplyDataType
from amlip_py.types.ModelRequestDataType import ModelRequestDataType
from amlip_py.types.StatusDataType import NodeKind, StateKind, StatusDataType
from amlip_py.types.TaskId import TaskId


class Counter:
    """What AML-IP's tutorial waits with (dev-utils' IntWaitHandler): a count and a condition."""

    def __init__(self):
        self.n = 0
        self.items = []
        self.cv = threading.Condition()

    def add(self, item=None):
        with self.cv:
            self.n += 1
            self.items.append(item)
            self.cv.notify_all()

    def wait(self, n, timeout=30.0):
        with self.cv:
            assert self.cv.wait_for(lambda: self.n >= n, timeout), f"{self.n} of {n} within {timeout} s"


def idx(name):
    data = gzip.open(ROOT / "datasets" / "mnist" / name).read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    count = 1
    for d in dims[1:]:
        count *= d
    body = data[4 + 4 * data[3]:]
    return dims, body, count


def tutorial_job(first, n):
    """The tutorial's job text: `x: ` + images as JSON + ` y: ` + labels as JSON."""
    _, images, size = idx("train-images.idx3-ubyte.gz")
    _, labels, _ = idx("train-labels.idx1-ubyte.gz")
    rows = [list(images[(first + i) * size:(first + i + 1) * size]) for i in range(n)]
    return "x: " + json.dumps(rows) + " y: " + json.dumps(list(labels[first:first + n]))


def test_types_behave_as_aml_ip_s():
    job = JobDataType("hello")
    assert (job.to_string(), job.to_vector(), job.data_size()) == ("hello", b"hello", 5)
    assert JobSolutionDataType(b"\x00\x01").to_vector() == b"\x00\x01"
    assert InferenceDataType(b"raw").to_string() == "raw"
    ident = AmlipIdDataType("MainNode")
    assert ident.name() == "MainNode" and ident.is_defined() and len(ident.id()) == 4
    assert ident.to_string().startswith("ID{MainNode.") and ident.to_string().endswith("}")
    assert not AmlipIdDataType().is_defined()
    assert AmlipIdDataType("A") != AmlipIdDataType("A"), "each id is new"
    assert isinstance(TaskId(3), int) and TaskId(3) == 3
    s = StatusDataType(ident, 4, 1)
    assert s.node_kind() == NodeKind.COMPUTING and s.state() == StateKind.RUNNING
    assert (NodeKind.STATUS, NodeKind.EDGE) == (5, 7), "wire values, not AML-IP's Python enum"
    with pytest.raises(Exception, match="name"):
        AmlipIdDataType("no/slash")


def test_tutorial_async_main_gets_json_from_an_amlip_computing_node(computing_node, domain):
    computing_node()
    got = Counter()
    # As the tutorial: a callback, keyword domain.
    main = AsyncMainNode("MainNode", callback=lambda s, t, server: got.add((s, t, server)),
                         domain=domain)
    tasks = [main.request_job_solution(JobDataType(tutorial_job(i * 50, 50))) for i in range(2)]
    got.wait(2, 120)
    assert sorted(t for _, t, _ in got.items) == sorted(tasks)
    model = {}
    for solution, _, server in got.items:
        assert server.name() == "Computing"
        model.update(json.loads(solution.to_string()))
    assert model, "the solutions are JSON dicts merged as the tutorial merges them"
    main.stop()


def test_listener_forms_and_python_computing_nodes(domain):
    # An AsyncComputingNode with a JobReplier subclass, positional domain.
    class Upper(JobReplier):
        def process_job(self, job, task_id, client_id):
            assert isinstance(task_id, TaskId) and client_id.name() in ("AsyncMain", "Lambda")
            return JobSolutionDataType(job.to_string().upper())

    served = AsyncComputingNode("PyComputing", domain, listener=Upper())
    served.run()

    class Listener(SolutionListener):
        def __init__(self):
            self.got = Counter()

        def solution_received(self, solution, task_id, server_id):
            self.got.add((solution.to_string(), server_id.name()))

    listener = Listener()
    main = AsyncMainNode("AsyncMain", domain, listener=listener)
    for word in ("alpha", "beta", "gamma"):
        main.request_job_solution(JobDataType(word))
    listener.got.wait(3)
    assert sorted(listener.got.items) == [("ALPHA", "PyComputing"), ("BETA", "PyComputing"),
                                          ("GAMMA", "PyComputing")]
    # The lambda forms.
    got = Counter()
    lam = AsyncMainNode("Lambda", domain=domain, listener=SolutionListenerLambda(
        lambda s, t, i: got.add(s.to_string())))
    lam.request_job_solution(JobDataType("delta"))
    got.wait(1)
    assert got.items == ["DELTA"]
    for n in (served, main, lam):
        n.stop()
    other = AsyncComputingNode("Replier", domain=domain, listener=JobReplierLambda(
        lambda job, task, client: JobSolutionDataType(job.to_string()[::-1])))
    other.run()
    sync = MainNode("SyncMain", domain)
    solution, server = sync.request_job_solution(JobDataType("abc"))
    assert solution.to_string() == "cba" and server.name() == "Replier"
    assert sync.get_id().name() == "SyncMain" and sync.id() == sync.get_id()
    other.stop()
    sync.stop()


def test_blocking_computing_node_answers_a_rust_main(spawn, domain):
    node = ComputingNode("Blocking", domain=domain)
    main = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "send",
                 "from rust", "--timeout", "60s")
    client = node.process_job(callback=lambda job: JobSolutionDataType(job.to_string() + "!"))
    assert client.name() == "Main"
    assert main.wait(60) == 0, main.output()
    assert "from rust!" in main.output()

    class Listener(JobListener):
        def process_job(self, job):
            return JobSolutionDataType(job.to_string().title())

    main2 = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "send",
                  "second job", "--timeout", "60s")
    node.process_job(listener=Listener())
    assert main2.wait(60) == 0 and "Second Job" in main2.output(), main2.output()
    main3 = spawn(binary("main-node"), "--domain", domain, "--network", "localhost", "send",
                  "third", "--timeout", "60s")
    node.process_job(listener=JobLambda(lambda job: JobSolutionDataType("3")))
    assert main3.wait(60) == 0 and "\n3\n" in "\n" + main3.output(), main3.output()
    node.stop()


def test_status_node_sees_each_kind(computing_node, domain):
    seen = Counter()
    status = StatusNode("Status", domain)
    status.process_status_async(callback=lambda s: seen.add(s))
    computing_node(name="Watched")
    main = MainNode("Watcher", domain)
    wait_until(lambda: any(s.id().name() == "Watched" and s.node_kind() == NodeKind.COMPUTING
                           for s in list(seen.items)), 30, "the computing node's status")
    wait_until(lambda: any(s.id().name() == "Watcher" and s.node_kind() == NodeKind.MAIN
                           for s in list(seen.items)), 30, "the main's status")
    main.stop()
    wait_until(lambda: any(s.id().name() == "Watcher" and s.state() == StateKind.DROPPED
                           for s in list(seen.items)), 30, "the main's dropped status")
    status.stop_processing()
    listened = Counter()
    other = StatusNode("Status2", domain=domain)
    other.process_status_async(listener=StatusLambda(listened.add))
    listened.wait(1)
    other.stop()


def test_edge_and_inference_nodes_in_every_form(domain):
    served = AsyncInferenceNode("Inference", domain, callback=lambda d, t, c:
                                InferenceSolutionDataType(d.to_string() + " inferred"))
    served.run()
    edge = EdgeNode("Edge", domain)
    answer, server = edge.request_inference(InferenceDataType("x"))
    assert answer.to_string() == "x inferred" and server.name() == "Inference"
    got = Counter()
    async_edge = AsyncEdgeNode("AsyncEdge", domain=domain, listener=InferenceListenerLambda(
        lambda s, t, i: got.add(s.to_string())))
    async_edge.request_inference(InferenceDataType("y"))
    got.wait(1)
    assert got.items == ["y inferred"]
    served.stop()
    blocking = InferenceNode("Blocking", domain)
    task = async_edge.request_inference(InferenceDataType(b"z"))
    client = blocking.process_inference(
        listener=InferenceLambda(lambda d: InferenceSolutionDataType(d.to_string() * 2)))
    got.wait(2)
    assert client.name() == "AsyncEdge" and got.items[1] == "zz" and isinstance(task, TaskId)
    replier = AsyncInferenceNode("Replier", domain, listener=InferenceReplierLambda(
        lambda d, t, c: InferenceSolutionDataType("r")))
    replier.run()
    blocking.stop()
    assert edge.request_inference(InferenceDataType("q"))[0].to_string() == "r"
    for n in (replier, edge, async_edge):
        n.stop()


def test_model_managers_hand_a_model_over(domain):
    model = bytes(range(256)) * 1000
    sender = ModelManagerSenderNode(AmlipIdDataType("ModelSender"), domain=domain)
    sender.publish_statistics("MobileNet V1", "accuracy 0.7")
    sender.start(callback=lambda request: ModelReplyDataType(
        model if request.to_string() == "MobileNet V1" else b"unknown"))
    stats = Counter()
    models = Counter()

    class Listener(ModelListener):
        def statistics_received(self, s):
            stats.add(s)

        def model_received(self, m):
            models.add(m)
            return True

    receiver = ModelManagerReceiverNode(AmlipIdDataType("ModelReceiver"),
                                        ModelRequestDataType("MobileNet V1"), domain)
    receiver.start(listener=Listener())
    stats.wait(1)
    s = stats.items[0]
    assert s.name() == "MobileNet V1" and s.to_string() == "accuracy 0.7"
    reply = receiver.request_model(s.server_id())
    models.wait(1)
    assert reply.to_vector() == model and models.items[0].to_vector() == model
    receiver.stop()
    sender.stop()


def test_an_amlip_py_computing_node_answers_the_fast_dds_peer_s_main(spawn, domain):
    peer = peer_or_skip()
    node = AsyncComputingNode("PyComputing", domain, callback=lambda job, t, c:
                              JobSolutionDataType(job.to_string().upper()))
    node.run()
    main = spawn(peer, "demo-main", "--domain", domain)
    assert main.wait(60) == 0, main.output()
    out = main.output()
    assert "summary jobs 3 ok 3 " in out and out.count(" by PyComputing.") == 3, out
    node.stop()
