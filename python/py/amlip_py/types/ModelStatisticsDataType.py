"""AML-IP's ``ModelStatisticsDataType``: a model's name, its sender and a statistics blob."""
from __future__ import annotations

from amlip_py._payload import as_bytes
from amlip_py.types.AmlipIdDataType import AmlipIdDataType


class ModelStatisticsDataType:
    """``ModelStatisticsDataType(message=None, data=None, size=None)``: ``message`` is the
    model's name, ``data`` the statistics (str or bytes; ``size`` bytes of it if given)."""

    def __init__(self, message=None, data=None, size=None, server_id: AmlipIdDataType = None):
        self._name = message if isinstance(message, str) else as_bytes(message).decode(errors="replace")
        blob = as_bytes(data)
        self._data = blob[:size] if size is not None else blob
        self._server = server_id if server_id is not None else AmlipIdDataType()

    def name(self) -> str:
        return self._name

    def server_id(self) -> AmlipIdDataType:
        return self._server

    def data(self) -> bytes:
        return self._data

    def data_size(self) -> int:
        return len(self._data)

    def to_string(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    def to_vector(self) -> bytes:
        return self._data

    def __str__(self) -> str:
        return f"MODEL_STATISTICS{{{self._name}, {self._server.to_string()}, {len(self._data)} bytes}}"

    __repr__ = __str__
