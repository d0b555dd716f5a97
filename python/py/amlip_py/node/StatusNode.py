"""AML-IP's ``StatusNode``: every node's status, to a callback or a ``StatusListener``."""
from __future__ import annotations

from amlip import _native
from amlip_py._nodes import Stoppable, handler, track
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.StatusDataType import StatusDataType


class StatusListener:
    """Subclass and override ``status_received``."""

    def status_received(self, status: StatusDataType) -> None:
        pass


class StatusLambda(StatusListener):
    """A listener from a function ``callback(status)``."""

    def __init__(self, callback):
        self._callback = callback

    def status_received(self, status) -> None:
        self._callback(status)


class StatusNode(Stoppable):
    """``StatusNode(name, domain=None)``."""

    def __init__(self, name: str, domain: int = None):
        self._name = name
        self._n = _native.Status(name, domain)
        track(self)

    def process_status_async(self, callback=None, listener=None) -> None:
        """Starts calling back with every status seen, on a node thread."""
        f = handler(callback, listener, "status_received", "process_status_async")
        if f is None:
            raise ValueError("process_status_async needs a callback or a listener")
        self._n.start(lambda id, kind, state: f(
            StatusDataType(AmlipIdDataType._from_text(id), kind, state)))

    def stop_processing(self) -> None:
        self._n.stop()

    def get_id(self) -> AmlipIdDataType:
        text = self._n.id
        return AmlipIdDataType._from_text(text) if text else AmlipIdDataType(self._name)
