"""AML-IP's ``InferenceNode``: each ``process_inference`` call answers one request."""
from __future__ import annotations

from amlip_py._nodes import handler
from amlip_py.node.ComputingNode import ComputingNode, solution_bytes
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.InferenceDataType import InferenceDataType


class InferenceListener:
    """Subclass and override ``process_inference``."""

    def process_inference(self, inference):
        raise NotImplementedError


class InferenceLambda(InferenceListener):
    """A listener from a function ``callback(inference) -> InferenceSolutionDataType``."""

    def __init__(self, callback):
        self._callback = callback

    def process_inference(self, inference):
        return self._callback(inference)


class InferenceNode(ComputingNode):
    """``InferenceNode(name)``."""

    _inference = True

    def __init__(self, name: str, domain: int = None):
        super().__init__(name, domain)

    def process_inference(self, callback=None, listener=None) -> AmlipIdDataType:
        """Waits for one request, answers it, returns the id of the node that sent it."""
        f = handler(callback, listener, "process_inference", "process_inference")
        served = self._n.process_one(
            lambda data, task, client: solution_bytes(f(InferenceDataType(data))))
        return AmlipIdDataType._from_text(served[1])
