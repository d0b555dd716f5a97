"""AML-IP's ``ModelManagerReceiverNode``: sees model announcements and asks a sender for its
model."""
from __future__ import annotations

import threading

from amlip import StoppedError, _native
from amlip_py._nodes import Stoppable, track, warn
from amlip_py.types.AmlipIdDataType import AmlipIdDataType
from amlip_py.types.ModelReplyDataType import ModelReplyDataType
from amlip_py.types.ModelRequestDataType import ModelRequestDataType
from amlip_py.types.ModelStatisticsDataType import ModelStatisticsDataType


class ModelListener:
    """Subclass and override ``statistics_received`` and ``model_received``."""

    def statistics_received(self, statistics: ModelStatisticsDataType) -> None:
        pass

    def model_received(self, model: ModelReplyDataType) -> bool:
        return True


class ModelListenerLambda(ModelListener):
    """A listener from ``callback_statistics(statistics)`` and ``callback_model(reply) -> bool``."""

    def __init__(self, callback_statistics, callback_model):
        self._stats, self._model = callback_statistics, callback_model

    def statistics_received(self, statistics) -> None:
        self._stats(statistics)

    def model_received(self, model) -> bool:
        return self._model(model)


def _statistics(name: str, server: str, data: bytes) -> ModelStatisticsDataType:
    return ModelStatisticsDataType(name, data, server_id=AmlipIdDataType._from_text(server))


class ModelManagerReceiverNode(Stoppable):
    """``ModelManagerReceiverNode(id, data, domain=None)``: ``data`` the request it sends."""

    # How long one model request may take (AML-IP's own client waits ~2.5 s per attempt).
    REQUEST_TIMEOUT = 30.0

    def __init__(self, id, data: ModelRequestDataType, domain: int = None):
        name = id.name() if isinstance(id, AmlipIdDataType) else str(id)
        self._n = _native.ModelReceiver(name, domain)
        self._id = AmlipIdDataType._from_text(self._n.id)
        self._request = data
        self._on_stats = None
        self._on_model = None
        self._stopped = threading.Event()
        self._thread = None
        track(self)

    def start(self, callback_statistics=None, callback_model=None, listener=None) -> None:
        """Starts calling ``callback_statistics`` with every announcement (on a node thread);
        ``callback_model`` gets each model requested."""
        if listener is not None:
            callback_statistics = listener.statistics_received
            callback_model = listener.model_received
        self._on_stats, self._on_model = callback_statistics, callback_model
        if self._on_stats is not None and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="amlip_py-models", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        try:
            for s in self._n.statistics():
                self._on_stats(_statistics(*s))
            while not self._stopped.is_set():
                s = self._n.next_statistics(0.2)
                if s is not None:
                    self._on_stats(_statistics(*s))
        except StoppedError:
            pass

    def request_model(self, server_id) -> ModelReplyDataType:
        """Asks ``server_id`` (an ``AmlipIdDataType``) for its model with this node's request;
        the reply goes to ``callback_model`` and is returned."""
        text = server_id._text() if isinstance(server_id, AmlipIdDataType) else str(server_id)
        reply = ModelReplyDataType(self._n.request(text, self._request.data(), self.REQUEST_TIMEOUT))
        if self._on_model is not None:
            self._on_model(reply)
        return reply

    def stop(self) -> None:
        self._stopped.set()
        self._n.stop()

    def get_id(self) -> AmlipIdDataType:
        return self._id
