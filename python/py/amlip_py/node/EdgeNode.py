"""AML-IP's ``EdgeNode``: sends an inference request and blocks until its answer arrives."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, track
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.InferenceDataType import InferenceDataType
from amlip_py.types.InferenceSolutionDataType import InferenceSolutionDataType


class EdgeNode(Stoppable):
    """``EdgeNode(name)`` (AML-IP v0.3 takes no domain here; amlip accepts one)."""

    def __init__(self, name: str, domain: int = None):
        self._n = _native.Main(name, domain, None, True)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def request_inference(self, data: InferenceDataType):
        """``(solution, server_id)``."""
        answer, server, _ = self._n.request(data.data(), None)
        return InferenceSolutionDataType(answer), AmlipIdDataType._from_text(server)

    def get_id(self) -> AmlipIdDataType:
        return self._id
