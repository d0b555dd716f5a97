"""AML-IP's ``ComputingNode``: each ``process_job`` call waits for one job and answers it."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.JobDataType import JobDataType
from amlip_py.types.JobSolutionDataType import JobSolutionDataType


class JobListener:
    """Subclass and override ``process_job``."""

    def process_job(self, job: JobDataType) -> JobSolutionDataType:
        raise NotImplementedError


class JobLambda(JobListener):
    """A listener from a function ``callback(job) -> JobSolutionDataType``."""

    def __init__(self, callback):
        self._callback = callback

    def process_job(self, job):
        return self._callback(job)


def solution_bytes(solution) -> bytes:
    if hasattr(solution, "data"):
        return solution.data()
    if isinstance(solution, (bytes, str)):
        return solution
    raise TypeError(f"a job's answer is a JobSolutionDataType, not {type(solution).__name__}")


class ComputingNode(Stoppable):
    """``ComputingNode(name, domain=None)``."""

    _inference = False

    def __init__(self, name: str, domain: int = None):
        self._n = _native.Computing(name, domain, None, self._inference, True)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def process_job(self, callback=None, listener=None) -> AmlipIdDataType:
        """Waits for one job, answers it with ``callback(job)`` (or the listener's
        ``process_job``) and returns the id of the main that sent it."""
        f = handler(callback, listener, "process_job", "process_job")
        served = self._n.process_one(lambda data, task, client: solution_bytes(f(JobDataType(data))))
        return AmlipIdDataType._from_text(served[1])

    def get_id(self) -> AmlipIdDataType:
        return self._id

    def id(self) -> AmlipIdDataType:
        return self._id
