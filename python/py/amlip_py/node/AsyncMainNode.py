"""AML-IP's ``AsyncMainNode``: sends jobs without waiting; solutions arrive on a callback or a
``SolutionListener``, called on a node thread."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track, warn
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.JobDataType import JobDataType
from amlip_py.types.JobSolutionDataType import JobSolutionDataType
from amlip_py.types.TaskId import TaskId


class SolutionListener:
    """Subclass and override ``solution_received``."""

    def solution_received(self, solution: JobSolutionDataType, task_id: TaskId,
                          server_id: AmlipIdDataType) -> None:
        pass


class SolutionListenerLambda(SolutionListener):
    """A listener from a function ``callback(solution, task_id, server_id)``."""

    def __init__(self, callback):
        self._callback = callback

    def solution_received(self, solution, task_id, server_id) -> None:
        self._callback(solution, task_id, server_id)


class AsyncMainNode(Stoppable):
    """``AsyncMainNode(name, domain=None, callback=None, listener=None)``."""

    def __init__(self, name: str, domain: int = None, callback=None, listener=None):
        f = handler(callback, listener, "solution_received", "AsyncMainNode")
        if f is None:
            raise ValueError("AsyncMainNode needs a callback or a listener")

        def outcome(data, task, server, error):
            if error is not None:
                warn(f"job {task} failed: {error}")
                return
            f(JobSolutionDataType(data), TaskId(task), AmlipIdDataType._from_text(server))

        self._n = _native.Main(name, domain, None, False, outcome)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def request_job_solution(self, job: JobDataType) -> TaskId:
        """Sends ``job``; returns its task id at once."""
        return TaskId(self._n.submit(job.data()))

    def get_id(self) -> AmlipIdDataType:
        return self._id

    def id(self) -> AmlipIdDataType:
        return self._id
