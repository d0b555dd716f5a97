"""AML-IP's ``AmlipIdDataType``: a node's id, a name and 4 random bytes."""
from __future__ import annotations

import base64

from amlip import _native


class AmlipIdDataType:
    """``AmlipIdDataType(name=None)``: a new unique id with that name (undefined without one)."""

    def __init__(self, name: str = None):
        if name is None:
            self._name, self._id = "", None
        else:
            self._name, suffix = _native.new_id(name)
            self._id = list(suffix)

    @classmethod
    def _from_text(cls, text: str) -> "AmlipIdDataType":
        # `Name.0a.1b.2c.3d`, as amlip prints ids.
        me = cls()
        parts = text.split(".")
        if len(parts) >= 5 and all(len(p) == 2 for p in parts[-4:]):
            me._name = ".".join(parts[:-4])
            me._id = [int(p, 16) for p in parts[-4:]]
        else:
            me._name = text
        return me

    def name(self) -> str:
        return self._name

    def id(self) -> list:
        """The 4 random bytes, as ints."""
        return list(self._id or [])

    def is_defined(self) -> bool:
        return self._id is not None

    def base64_name(self) -> str:
        return base64.b64encode(self._name.encode()).decode()

    def _text(self) -> str:
        if self._id is None:
            return self._name
        return self._name + "".join(f".{b:02x}" for b in self._id)

    def to_string(self) -> str:
        """``ID{Main.41.6e.cc.89}``."""
        return "ID{" + self._text() + "}"

    def __str__(self) -> str:
        return self.to_string()

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return isinstance(other, AmlipIdDataType) and other._text() == self._text()

    def __hash__(self) -> int:
        return hash(self._text())
