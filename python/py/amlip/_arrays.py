"""numpy arrays to and from the tensors amlip payloads carry (safetensors dtypes, C order)."""
from __future__ import annotations

import numpy as np

from ._native import ArgumentError

_WIRE = {"|u1": "u8", "<i4": "i32", "<i8": "i64", "<f4": "f32", "<f8": "f64"}
_NUMPY = {"u8": np.uint8, "i32": np.dtype("<i4"), "i64": np.dtype("<i8"),
          "f32": np.dtype("<f4"), "f64": np.dtype("<f8")}


def to_wire(name: str, array) -> tuple:
    """(name, dtype, shape, bytes) of an array-like; bool becomes uint8."""
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    dtype = _WIRE.get(a.dtype.str)
    if dtype is None:
        raise ArgumentError(
            f"tensor {name!r}: dtype {a.dtype} cannot travel "
            "(amlip carries uint8, int32, int64, float32, float64)")
    return (name, dtype, list(a.shape), np.ascontiguousarray(a).tobytes())


def from_wire(dtype: str, shape, data: bytes) -> np.ndarray:
    """A read-only numpy view of a tensor's bytes (no copy); `.copy()` it to write."""
    return np.frombuffer(data, dtype=_NUMPY[dtype]).reshape(shape)


def to_dict(tensors) -> dict:
    return {name: from_wire(d, s, b) for name, d, s, b in tensors}


def from_dict(arrays) -> list:
    if arrays is None:
        return []
    if not isinstance(arrays, dict):
        raise ArgumentError(f"tensors must be a dict of name -> array, not {type(arrays).__name__}")
    return [to_wire(str(k), v) for k, v in arrays.items()]
