"""AML-IP's ``AsyncInferenceNode``: answers every inference request in the background."""
from __future__ import annotations

from amlip_py.node.AsyncComputingNode import AsyncComputingNode
from amlip_py.types.InferenceDataType import InferenceDataType


class InferenceReplier:
    """Subclass and override ``process_inference``."""

    def process_inference(self, inference, task_id, client_id):
        raise NotImplementedError


class InferenceReplierLambda(InferenceReplier):
    """A replier from ``callback(inference, task_id, client_id) -> InferenceSolutionDataType``."""

    def __init__(self, callback):
        self._callback = callback

    def process_inference(self, inference, task_id, client_id):
        return self._callback(inference, task_id, client_id)


class AsyncInferenceNode(AsyncComputingNode):
    """``AsyncInferenceNode(name, domain=None, callback=None, listener=None)``; ``run()``,
    ``stop()``."""

    _inference = True
    _wrap = InferenceDataType

    def __init__(self, name: str, domain: int = None, callback=None, listener=None):
        if listener is not None and callback is None:
            callback = listener.process_inference
            listener = None
        super().__init__(name, domain, callback, listener)
