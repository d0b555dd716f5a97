"""AML-IP's ``AsyncComputingNode``: answers every job in the background with a callback or a
``JobReplier``."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track
from amlip_py.node.ComputingNode import solution_bytes
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.JobDataType import JobDataType
from amlip_py.types.TaskId import TaskId


class JobReplier:
    """Subclass and override ``process_job``."""

    def process_job(self, job, task_id, client_id):
        raise NotImplementedError


class JobReplierLambda(JobReplier):
    """A replier from a function ``callback(job, task_id, client_id) -> JobSolutionDataType``."""

    def __init__(self, callback):
        self._callback = callback

    def process_job(self, job, task_id, client_id):
        return self._callback(job, task_id, client_id)


class AsyncComputingNode(Stoppable):
    """``AsyncComputingNode(name, domain=None, callback=None, listener=None)``; ``run()`` starts
    serving, ``stop()`` ends it."""

    _inference = False
    _wrap = JobDataType

    def __init__(self, name: str, domain: int = None, callback=None, listener=None):
        self._f = handler(callback, listener, "process_job", type(self).__name__)
        if self._f is None:
            raise ValueError(f"{type(self).__name__} needs a callback or a listener")
        self._n = _native.Computing(name, domain, None, self._inference, False)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def run(self) -> None:
        f, wrap = self._f, self._wrap

        def answer(data, task, client):
            return solution_bytes(f(wrap(data), TaskId(task), AmlipIdDataType._from_text(client)))

        self._n.serve(None, answer, False, True)

    def get_id(self) -> AmlipIdDataType:
        return self._id

    def id(self) -> AmlipIdDataType:
        return self._id
