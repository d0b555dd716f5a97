"""AML-IP's ``AsyncEdgeNode``: sends inference requests without waiting; answers arrive on a
callback or an ``InferenceSolutionListener``."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track, warn
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.InferenceSolutionDataType import InferenceSolutionDataType
from amlip_py.types.TaskId import TaskId


class InferenceSolutionListener:
    """Subclass and override ``inference_received``."""

    def inference_received(self, inference, task_id, server_id) -> None:
        pass


class InferenceListenerLambda(InferenceSolutionListener):
    """A listener from a function ``callback(inference, task_id, server_id)``."""

    def __init__(self, callback):
        self._callback = callback

    def inference_received(self, inference, task_id, server_id) -> None:
        self._callback(inference, task_id, server_id)


class AsyncEdgeNode(Stoppable):
    """``AsyncEdgeNode(name, domain=None, callback=None, listener=None)``."""

    def __init__(self, name: str, domain: int = None, callback=None, listener=None):
        f = handler(callback, listener, "inference_received", "AsyncEdgeNode")
        if f is None:
            raise ValueError("AsyncEdgeNode needs a callback or a listener")

        def outcome(data, task, server, error):
            if error is not None:
                warn(f"inference {task} failed: {error}")
                return
            f(InferenceSolutionDataType(data), TaskId(task), AmlipIdDataType._from_text(server))

        self._n = _native.Main(name, domain, None, True, outcome)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def request_inference(self, data) -> TaskId:
        return TaskId(self._n.submit(data.data()))

    def get_id(self) -> AmlipIdDataType:
        return self._id
