"""AML-IP's ``ModelManagerSenderNode``: announces models and hands them to receivers that ask."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track
from amlip_py.node.ComputingNode import solution_bytes
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.ModelRequestDataType import ModelRequestDataType


class ModelReplier:
    """Subclass and override ``fetch_model``."""

    def fetch_model(self, request: ModelRequestDataType):
        raise NotImplementedError


class ModelReplierLambda(ModelReplier):
    """A replier from ``callback(request) -> ModelReplyDataType``."""

    def __init__(self, callback):
        self._callback = callback

    def fetch_model(self, request):
        return self._callback(request)


class ModelManagerSenderNode(Stoppable):
    """``ModelManagerSenderNode(id, domain=None)``: ``id`` an ``AmlipIdDataType`` (its name
    names the node) or a name."""

    def __init__(self, id, domain: int = None):
        name = id.name() if isinstance(id, AmlipIdDataType) else str(id)
        self._n = _native.ModelSender(name, domain)
        self._id = AmlipIdDataType._from_text(self._n.id)
        track(self)

    def publish_statistics(self, name: str, data) -> None:
        """Announces the model ``name`` with ``data`` (str or bytes)."""
        self._n.publish(name, data.encode() if isinstance(data, str) else bytes(data))

    def start(self, callback=None, listener=None) -> None:
        """Starts answering model requests with ``callback(request) -> ModelReplyDataType``."""
        f = handler(callback, listener, "fetch_model", "ModelManagerSenderNode.start")
        if f is None:
            raise ValueError("start needs a callback or a listener")
        self._n.start(lambda client, request: solution_bytes(f(ModelRequestDataType(request))))

    def get_id(self) -> AmlipIdDataType:
        return self._id
