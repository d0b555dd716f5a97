"""What AML-IP's data types share: a payload of bytes, made from str or bytes."""
from __future__ import annotations


def as_bytes(message) -> bytes:
    if message is None:
        return b""
    if isinstance(message, str):
        return message.encode()
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, (list, tuple)):
        return bytes(message)
    raise TypeError(f"a payload is str or bytes, not {type(message).__name__}")


class Payload:
    """A message as AML-IP's types carry it: bytes, readable as text."""

    def __init__(self, message=None):
        self._data = as_bytes(message)

    def to_string(self) -> str:
        """The bytes as text (UTF-8; undecodable bytes replaced)."""
        return self._data.decode("utf-8", errors="replace")

    def to_vector(self) -> bytes:
        """The bytes."""
        return self._data

    def data(self) -> bytes:
        return self._data

    def data_size(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data[:40]!r}{'...' if len(self._data) > 40 else ''})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._data == self._data

    def __hash__(self) -> int:
        return hash(self._data)
