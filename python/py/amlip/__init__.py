"""amlip: machine-learning jobs shared over DDS, wire-compatible with eProsima AML-IP v0.3.

A :class:`MainNode` sends jobs; any number of :class:`ComputingNode` s on the same DDS domain
(this host or others) take them and send solutions back. Payloads are ``bytes`` (AML-IP's way)
or dicts of numpy arrays with JSON parameters (amlip's job kinds). Job kinds can be written in
Python. :class:`Client` is SmartSim's client over amlip inference; :class:`Producer` and
:class:`Consumer` carry sample streams; :func:`cluster` lists the nodes of a domain.

Every blocking call releases the GIL and stops at Ctrl-C. Nodes stop when their ``with`` block
ends, on ``stop()``, and when the interpreter exits.

AML-IP's own Python API is the ``amlip_py`` package, shipped alongside.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import _native
from ._arrays import from_dict, to_dict, to_wire, from_wire
from ._native import (ArgumentError, DEFAULT_DOMAIN, Error, JobError, PayloadError,
                      StoppedError, TimeoutError)

__all__ = [
    "MainNode", "ComputingNode", "EdgeNode", "Batch", "Outcome", "Solution", "Client",
    "Producer", "Consumer", "cluster", "train", "pipeline", "encode", "decode", "log", "Error", "TimeoutError",
    "JobError", "PayloadError", "ArgumentError", "StoppedError", "DEFAULT_DOMAIN",
]

_live: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # Before the interpreter goes: no callback may run into a half-finalized Python.
    _native.interpreter_exiting()
    for node in list(_live):
        try:
            node.stop()
        except Exception:
            pass


def log(level: str = "info") -> None:
    """Prints the library's log (``error``, ``warn``, ``info``, ``debug`` or a RUST_LOG filter)
    to standard error. The first call decides."""
    _native.log(level)


def encode(kind: str, arrays: Optional[dict] = None, params: Any = None) -> bytes:
    """The bytes of an amlip payload of ``kind``: numpy arrays and JSON parameters."""
    return _native.encode(kind, json.dumps(params if params is not None else {}), from_dict(arrays))


def decode(data: bytes) -> Tuple[str, dict, Any]:
    """``(kind, arrays, params)`` of an amlip payload's bytes."""
    kind, params, tensors = _native.decode(data)
    return kind, to_dict(tensors), json.loads(params)


def _bytes(data) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray)):
        return data
    raise ArgumentError(f"a job is bytes or str, not {type(data).__name__}")


class Solution:
    """A job kind's answer: its arrays, its parameters, and the node that computed it."""

    __slots__ = ("arrays", "params", "server")

    def __init__(self, arrays: dict, params: Any, server: str):
        self.arrays, self.params, self.server = arrays, params, server

    def __getitem__(self, name: str):
        return self.arrays[name]

    def __repr__(self) -> str:
        shapes = {k: (str(v.dtype), v.shape) for k, v in self.arrays.items()}
        return f"Solution(arrays={shapes}, params={self.params!r}, server={self.server!r})"


def _solution(data: bytes, server: str) -> Solution:
    _, arrays, params = decode(data)
    return Solution(arrays, params, server)


class Outcome:
    """One ended job of a :class:`Batch`: its label, task id, and either ``data`` (the
    solution's bytes) and ``server``, or ``error`` (an :class:`amlip.Error`)."""

    __slots__ = ("label", "task_id", "data", "server", "error")

    def __init__(self, label, task_id, data, server, error):
        self.label, self.task_id, self.data, self.server, self.error = (
            label, task_id, data, server, error)

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> bytes:
        """The solution's bytes, or the job's error raised."""
        if self.error is not None:
            raise self.error
        return self.data

    def solution(self) -> Solution:
        """The solution decoded as a job kind's (arrays and parameters)."""
        return _solution(self.result(), self.server)

    def __repr__(self) -> str:
        what = f"{len(self.data)} bytes from {self.server}" if self.ok else repr(self.error)
        return f"Outcome(label={self.label!r}, task_id={self.task_id}, {what})"


class Batch:
    """Many jobs at once: ``submit`` them, then iterate outcomes as they end (``for`` or
    ``async for``). ``on_progress(done, total, outcome)`` is called after each."""

    def __init__(self, node: "MainNode", timeout: Optional[float] = None,
                 on_progress: Optional[Callable[[int, int, Outcome], None]] = None):
        self._node = node
        self._timeout = timeout
        self._collector = _native.Collector()
        self._labels: Dict[int, Any] = {}
        self._on_progress = on_progress
        self.total = 0
        self.done = 0

    def submit(self, data, label: Any = None) -> int:
        """Sends a job (bytes or str); returns its task id."""
        task = self._node._n.submit(_bytes(data), self._timeout, self._collector)
        self._labels[task] = task if label is None else label
        self.total += 1
        return task

    def submit_job(self, kind: str, arrays: Optional[dict] = None, params: Any = None,
                   label: Any = None) -> int:
        """Sends a job of ``kind`` with numpy arrays and JSON parameters."""
        return self.submit(encode(kind, arrays, params), label)

    @property
    def pending(self) -> int:
        return len(self._labels)

    def next(self, timeout: Optional[float] = None) -> Optional[Outcome]:
        """The next ended job, waiting at most ``timeout`` seconds (None if none ended)."""
        if not self._labels:
            return None
        got = self._collector.next(timeout)
        if got is None:
            return None
        task, data, server, error = got
        outcome = Outcome(self._labels.pop(task, task), task, data, server, error)
        self.done += 1
        if self._on_progress is not None:
            self._on_progress(self.done, self.total, outcome)
        return outcome

    def __iter__(self) -> Iterator[Outcome]:
        while self._labels:
            outcome = self.next()
            if outcome is not None:
                yield outcome

    def __aiter__(self):
        return self._async_outcomes()

    async def _async_outcomes(self):
        loop = asyncio.get_running_loop()
        while self._labels:
            outcome = await loop.run_in_executor(None, self.next, 0.25)
            if outcome is not None:
                yield outcome

    def results(self) -> list:
        """Every solution's bytes in submission order; the first error is raised."""
        order = list(self._labels.values())
        got = {o.label: o.result() for o in self}
        return [got[label] for label in order]

    def cancel(self) -> None:
        """Gives up on every job still pending (each ends as cancelled)."""
        for task in list(self._labels):
            self._node._n.cancel(task)


class _Node:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Leaves the domain (nodes elsewhere see it dropped)."""
        self._n.stop()

    @property
    def id(self) -> str:
        """The node's id, e.g. ``Main.0a.1b.2c.3d``."""
        return self._n.id


class MainNode(_Node):
    """Sends jobs to the computing nodes on its domain.

    ``domain``: 0..232 (default: ``AMLIP_DOMAIN``, else 166, AML-IP's); ``network``: ``all``,
    ``localhost`` or interface addresses (default: ``AMLIP_NETWORK``, else ``all``).
    """

    _edge = False

    def __init__(self, name: str = "Main", domain: Optional[int] = None,
                 network: Optional[str] = None):
        self._n = _native.Main(name, domain, network, self._edge)
        _live.add(self)

    @property
    def domain(self) -> int:
        return self._n.domain

    def request(self, data, timeout: Optional[float] = 60.0) -> bytes:
        """Sends a job (bytes or str) and returns its solution's bytes; raises
        :class:`TimeoutError` after ``timeout`` seconds, :class:`JobError` with the computing
        node's message if it failed."""
        return self._n.request(_bytes(data), timeout)[0]

    def request_job(self, kind: str, arrays: Optional[dict] = None, params: Any = None,
                    timeout: Optional[float] = 60.0) -> Solution:
        """Sends a job of ``kind`` (numpy arrays, JSON parameters) and returns its solution."""
        data, server, _ = self._n.request(encode(kind, arrays, params), timeout)
        return _solution(data, server)

    async def request_async(self, data, timeout: Optional[float] = 60.0) -> bytes:
        """``await``-able :meth:`request`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.request, data, timeout)

    async def request_job_async(self, kind: str, arrays: Optional[dict] = None,
                                params: Any = None, timeout: Optional[float] = 60.0) -> Solution:
        """``await``-able :meth:`request_job`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.request_job, kind, arrays, params, timeout)

    def batch(self, timeout: Optional[float] = None,
              on_progress: Optional[Callable[[int, int, Outcome], None]] = None) -> Batch:
        """A batch of jobs from this node; ``timeout``: seconds per job."""
        return Batch(self, timeout, on_progress)

    def wait_for_nodes(self, n: int = 1, timeout: float = 30.0) -> int:
        """Waits until ``n`` computing nodes are known; returns how many are."""
        return self._n.wait_for_nodes(n, timeout)

    def stats(self) -> dict:
        """Jobs submitted, solved, failed, re-sent; computing nodes known; bytes moved."""
        return self._n.stats()


class EdgeNode(MainNode):
    """Sends inference requests to the inference nodes on its domain (AML-IP's edge node)."""

    _edge = True

    def __init__(self, name: str = "Edge", domain: Optional[int] = None,
                 network: Optional[str] = None):
        super().__init__(name, domain, network)


KindFunction = Callable[[Dict[str, Any], Any], Any]


def _kind_adapter(kind: str, f: KindFunction):
    def call(params_json: str, tensors: list):
        out = f(to_dict(tensors), json.loads(params_json))
        arrays, params = out if isinstance(out, tuple) else (out, {})
        return json.dumps(params if params is not None else {}), from_dict(arrays)
    call.__name__ = f"kind_{kind}"
    return call


def _plain_adapter(f: Callable[[bytes], Any]):
    def call(data: bytes, task_id: int, client_id: str):
        return f(data)
    return call


class ComputingNode(_Node):
    """Takes jobs from the mains on its domain and answers them, in the background.

    ``kinds``: job kinds written in Python, name -> ``f(arrays, params)`` returning a dict of
    arrays (or ``(arrays, params)``); ``plain``: ``f(data: bytes) -> bytes | str`` for payloads
    that name no kind (AML-IP's text jobs); ``builtin``: also the kinds amlip's
    ``computing-node`` serves (AML and network training, AML-IP's tutorial jobs). An exception
    is sent back as the job's error; the node keeps serving. Serving starts at ``run()`` or
    when the ``with`` block begins.
    """

    _inference = False

    def __init__(self, name: str = "Computing", domain: Optional[int] = None,
                 network: Optional[str] = None, kinds: Optional[Dict[str, KindFunction]] = None,
                 plain: Optional[Callable[[bytes], Any]] = None, builtin: bool = False):
        self._n = _native.Computing(name, domain, network, self._inference, False)
        self._kinds: Dict[str, KindFunction] = dict(kinds or {})
        self._plain = plain
        self._builtin = builtin
        self._running = False
        _live.add(self)

    def kind(self, name: str) -> Callable[[KindFunction], KindFunction]:
        """Decorator: serves the function as job kind ``name`` (call before ``run()``)."""
        def register(f: KindFunction) -> KindFunction:
            self._kinds[name] = f
            return f
        return register

    def run(self) -> List[str]:
        """Starts serving; returns the kinds served."""
        kinds = {k: _kind_adapter(k, f) for k, f in self._kinds.items()}
        plain = _plain_adapter(self._plain) if self._plain is not None else None
        served = self._n.serve(kinds, plain, self._builtin)
        self._running = True
        return served

    def __enter__(self):
        if not self._running:
            self.run()
        return self

    @property
    def served(self) -> int:
        """Jobs answered with a solution."""
        return self._n.counts()[0]

    @property
    def failed(self) -> int:
        """Jobs answered with an error."""
        return self._n.counts()[1]


class Client:
    """SmartSim's client, over amlip inference: tensors live in this client until a model runs
    on them; models travel to the domain's inference nodes (``computing-node --serve-models``).

    ``address`` and ``cluster`` are accepted for SmartSim's signature and ignored: the domain
    decides who serves.
    """

    def __init__(self, address: Optional[str] = None, cluster: bool = False,
                 domain: Optional[int] = None, network: Optional[str] = None,
                 timeout: float = 60.0, name: str = "Client"):
        self._c = _native.Client(name, domain, network, timeout)
        _live.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._c.close()

    def put_tensor(self, name: str, data) -> None:
        """Keeps the array under ``name``."""
        _, dtype, shape, raw = to_wire(name, data)
        self._c.put_tensor(name, dtype, shape, raw)

    def get_tensor(self, name: str):
        """The array under ``name`` (put, or a model's output); ``KeyError`` if none."""
        got = self._c.get_tensor(name)
        if got is None:
            raise KeyError(f"no tensor {name!r} in this client")
        return from_wire(*got)

    def tensor_exists(self, name: str) -> bool:
        return self._c.get_tensor(name) is not None

    def poll_tensor(self, name: str, poll_frequency_ms: int = 0, num_tries: int = 1) -> bool:
        return self.tensor_exists(name)

    def delete_tensor(self, name: str) -> None:
        self._c.delete_tensor(name)

    def set_model(self, name: str, model: bytes, backend: str = "ONNX", device: str = "CPU",
                  **_ignored) -> None:
        """Offers the model (ONNX or amlip file bytes) and waits until a node serves it."""
        self._c.set_model(name, bytes(model))

    def set_model_from_file(self, name: str, model_file: str, backend: str = "ONNX",
                            device: str = "CPU", **_ignored) -> None:
        with open(model_file, "rb") as f:
            self.set_model(name, f.read(), backend, device)

    def run_model(self, name: str, inputs=None, outputs=None) -> None:
        """Runs the model on the tensors named ``inputs``; keeps its outputs under ``outputs``."""
        as_list = lambda v: [] if v is None else ([v] if isinstance(v, str) else list(v))
        self._c.run_model(name, as_list(inputs), as_list(outputs))


class Producer:
    """One rank of a simulation publishing samples on ``stream`` (SmartSim's online training):
    ``main-node online --stream NAME`` and :class:`Consumer` read them."""

    def __init__(self, stream: str, rank: int = 0, domain: Optional[int] = None,
                 network: Optional[str] = None, retain_bytes: int = 256 << 20):
        self._p = _native.Producer(stream, rank, domain, network, retain_bytes)
        _live.add(self)

    def publish(self, iteration: int, x, y) -> None:
        """Publishes samples: ``x`` of shape (n, inputs) and ``y`` of shape (n, targets)
        (1-D means one value per sample), as float32."""
        import numpy as np
        x = np.ascontiguousarray(x, dtype="<f4")
        y = np.ascontiguousarray(y, dtype="<f4")
        x2 = x.reshape(len(x), -1) if x.ndim != 1 else x.reshape(-1, 1)
        y2 = y.reshape(len(y), -1) if y.ndim != 1 else y.reshape(-1, 1)
        self._p.publish(iteration, x2.tobytes(), x2.shape[1], y2.tobytes(), y2.shape[1])

    @property
    def produced(self) -> int:
        return self._p.produced()

    def finish(self, readers: int = 1, linger: float = 30.0) -> Tuple[int, int]:
        """Ends the stream; waits until ``readers`` consumers read it whole: (produced, drained)."""
        return self._p.finish(readers, linger)

    def stop(self) -> None:
        try:
            self._p.finish(0, 0.0)
        except StoppedError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Consumer:
    """Follows every producer of ``stream``, holding at most ``keep`` samples (the newest, or a
    uniform sample with ``reservoir=True``)."""

    def __init__(self, stream: str, domain: Optional[int] = None, network: Optional[str] = None,
                 keep: int = 1_000_000, reservoir: bool = False, silence: float = 10.0):
        self._c = _native.Consumer(stream, domain, network, keep, reservoir, silence)
        _live.add(self)

    def samples(self):
        """``(x, y)`` float32 arrays of the samples held (None before the first)."""
        import numpy as np
        got = self._c.samples()
        if got is None:
            return None
        xb, xl, yb, yl, n = got
        return (np.frombuffer(xb, "<f4").reshape(n, xl), np.frombuffer(yb, "<f4").reshape(n, yl))

    def counts(self) -> List[dict]:
        """Per producer: rank, produced, received, kept, rejected, dropped, state."""
        return json.loads(self._c.counts())

    def wait_for_producers(self, n: int = 1, timeout: float = 30.0) -> int:
        return self._c.wait_for_producers(n, timeout)

    def wait_settled(self, timeout: float = 60.0) -> bool:
        """Waits until every producer ended and all it sent is in."""
        return self._c.wait_settled(timeout)

    def stop(self) -> None:
        self._c.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def cluster(domain: Optional[int] = None, network: Optional[str] = None,
            seconds: float = 3.0) -> List[dict]:
    """Every node heard on the domain within ``seconds``: id, kind, state, host, jobs in flight
    and done, last heard (ms), whether it is an amlip node (as ``main-node status --json``).
    An amlip main also carries ``main``: its job counters, solved per second, and its sessions
    (kind, name, state, step, detail, curve points), from the summary every main publishes."""
    return json.loads(_native.cluster(domain, network, seconds))


def train(model: str = "mlp", data: Optional[str] = None, *, test: Optional[str] = None,
          jobs: int = 3, rounds: int = 5, epochs: Optional[int] = None, hidden: int = 128,
          digit: Optional[str] = None, batch: int = 64, learning_rate: Optional[float] = None,
          seed: int = 1, limit: Optional[int] = None, wait_nodes: int = 0,
          timeout: float = 600.0, out: Optional[str] = None, domain: Optional[int] = None,
          network: Optional[str] = None) -> dict:
    """Trains across the domain's computing nodes, as ``main-node train`` does, and returns its
    report (what ``--report`` writes) as a dict; ``out`` writes the model file.

    ``model``: ``aml`` (AML shards, one classifier per ``digit`` or per class, merged), ``mlp``
    (federated averaging over ``rounds``), ``cnn`` or ``dense`` (synchronous all-reduce over
    ``jobs`` workers). ``data``: MNIST's directory (default ``datasets/mnist``) or a CSV, .npy,
    .npz or safetensors file.
    """
    return json.loads(_native.train(model, data, test, jobs, rounds, epochs, hidden, digit, batch,
                                    learning_rate, seed, limit, wait_nodes, timeout, out, domain,
                                    network))


def pipeline(path: str, *, wait_nodes: int = 1, task_timeout: float = 1800.0, seed: int = 1,
             domain: Optional[int] = None, network: Optional[str] = None) -> List[dict]:
    """Runs a pipeline file (as ``main-node pipeline``) on the domain's computing nodes; returns
    each task's report: name, kind, attempts, seconds, nodes, summary."""
    return json.loads(_native.pipeline(path, wait_nodes, task_timeout, seed, domain, network))
