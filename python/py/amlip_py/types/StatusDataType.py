"""AML-IP's ``StatusDataType`` with the ``NodeKind`` and ``StateKind`` enums.

``NodeKind`` holds the values that go on the wire (AML-IP's C++ values). AML-IP's own Python
enum lists EDGE 5 and STATUS 6, which is not what its nodes send (status is 5, edge 7):
``node_kind()`` returns the wire value, so compare against this module's ``NodeKind``.
"""
from __future__ import annotations

import enum

from amlip_py.types.AmlipIdDataType import AmlipIdDataType


class NodeKind(enum.IntEnum):
    UNDETERMINED = 0
    DISCOVERY = 1
    AGENT = 2
    MAIN = 3
    COMPUTING = 4
    STATUS = 5
    META = 6
    EDGE = 7
    INFERENCE = 8
    MODEL_RECEIVER = 9
    MODEL_SENDER = 10
    FIWARE = 11


class StateKind(enum.IntEnum):
    UNKNOWN = 0
    RUNNING = 1
    STOPPED = 2
    DROPPED = 3


def _enum(cls, value):
    try:
        return cls(value)
    except ValueError:
        return value


class StatusDataType:
    """``StatusDataType(id=None, node_kind=None, state=None)``."""

    def __init__(self, id: AmlipIdDataType = None, node_kind=None, state=None):
        self._id = id if id is not None else AmlipIdDataType()
        self._kind = _enum(NodeKind, node_kind if node_kind is not None else 0)
        self._state = _enum(StateKind, state if state is not None else 0)

    def id(self) -> AmlipIdDataType:
        return self._id

    def node_kind(self):
        return self._kind

    def state(self):
        return self._state

    def to_string(self) -> str:
        kind = self._kind.name if isinstance(self._kind, NodeKind) else str(self._kind)
        state = self._state.name if isinstance(self._state, StateKind) else str(self._state)
        return f"STATUS{{{self._id.to_string()}, {kind}, {state}}}"

    def __str__(self) -> str:
        return self.to_string()

    __repr__ = __str__
