"""AML-IP's ``MainNode``: sends a job and blocks until its solution arrives."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, track
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.JobDataType import JobDataType
from amlip_py.types.JobSolutionDataType import JobSolutionDataType


class MainNode(Stoppable):
    """``MainNode(name, domain=None)``."""

    def __init__(self, name: str, domain: int = None):
        self._n = _native.Main(name, domain)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def request_job_solution(self, job: JobDataType):
        """Sends ``job`` and waits for its solution: ``(solution, server_id)``."""
        data, server, _ = self._n.request(job.data(), None)
        return JobSolutionDataType(data), AmlipIdDataType._from_text(server)

    def get_id(self) -> AmlipIdDataType:
        return self._id

    def id(self) -> AmlipIdDataType:
        return self._id
