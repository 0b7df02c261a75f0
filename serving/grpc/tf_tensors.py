"""tensorflow.TensorProto ↔ numpy, without TensorFlow.

Reads ``tensor_content`` (packed little-endian) and every typed ``*_val`` field TF
Serving clients send (``half_val`` carries float16 bit patterns; a single value fills
the whole shape, as in TensorFlow); DT_STRING becomes an object array of bytes.
A request tensor is read as a ``WireTensor``: its declared dtype and shape first, the
array (the fill included) only once the dataplane has admitted the declaration.
Writes ``tensor_content`` for numbers (one copy, no per-element work) and
``string_val`` for bytes.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from serving.admission import MAX_RANK, WireTensor, declared_shape, object_array
from serving.errors import InvalidInput
from serving.grpc.generated.tensorflow.core.framework import (
    tensor_pb2,
    types_pb2,
)
from serving.wire.dtypes import NUMPY_TO_TF, tf_datatype

# The TensorProto field that carries each dtype's typed values (DataTypes: serving/wire/dtypes.py).
_VALUE_FIELD = {
    "float16": "half_val", "float32": "float_val", "float64": "double_val",
    "int8": "int_val", "int16": "int_val", "int32": "int_val", "int64": "int64_val",
    "uint8": "int_val", "uint16": "int_val", "uint32": "uint32_val", "uint64": "uint64_val",
    "bool": "bool_val", "object": "string_val",
}
_BY_ENUM = {types_pb2.DataType.Value(tf): (np.dtype(np_name), _VALUE_FIELD[np_name])
            for np_name, tf in NUMPY_TO_TF.items()}
_ENUM = {tf: types_pb2.DataType.Value(tf) for tf in [*NUMPY_TO_TF.values(), "DT_INVALID"]}


def tf_dtype(dtype: np.dtype | str) -> Any:
    """The DataType enum value (an int) for a numpy dtype (DT_INVALID when there is none)."""
    return _ENUM[tf_datatype(dtype)]


def _shape(proto: tensor_pb2.TensorProto, name: str) -> list[int]:
    sizes = [d.size for d in proto.tensor_shape.dim[:MAX_RANK + 1]]  # more: refused anyway
    if proto.tensor_shape.unknown_rank or any(d < 0 for d in sizes):
        raise InvalidInput(f"input {name!r}: a request tensor needs a fully known shape")
    return list(declared_shape(name, sizes))


def _strings(proto: tensor_pb2.TensorProto, size: int, name: str) -> np.ndarray:
    if len(proto.string_val) != size:  # counted before any is converted
        raise InvalidInput(f"input {name!r}: {len(proto.string_val)} strings for {size} "
                           f"elements")
    return object_array(proto.string_val)


def _typed(proto: tensor_pb2.TensorProto, dtype: np.dtype, field: str, name: str) -> np.ndarray:
    values = getattr(proto, field)
    try:
        if dtype == np.float16:
            return np.asarray(values, dtype=np.uint16).view(np.float16)
        return np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"input {name!r}: values out of range for {dtype}",
                           detail=str(exc)) from exc


def to_wire(proto: tensor_pb2.TensorProto, name: str = "tensor") -> WireTensor:
    """The tensor as declared (dtype, shape); its array is built by ``build()``."""
    if proto.dtype not in _BY_ENUM:
        label = types_pb2.DataType.Name(proto.dtype) if proto.dtype in \
            types_pb2.DataType.values() else str(proto.dtype)
        raise InvalidInput(f"input {name!r}: dtype {label} is not supported")
    dtype, field = _BY_ENUM[proto.dtype]
    shape = _shape(proto, name)
    return WireTensor(name, dtype, tuple(shape),
                      lambda: _build(proto, dtype, field, shape, name))


def to_numpy(proto: tensor_pb2.TensorProto, name: str = "tensor") -> np.ndarray:
    return to_wire(proto, name).build()


def _build(proto: tensor_pb2.TensorProto, dtype: np.dtype, field: str, shape: list[int],
           name: str) -> np.ndarray:
    size = math.prod(shape)
    if dtype.kind == "O":
        return _strings(proto, size, name).reshape(shape)
    if proto.tensor_content:
        if len(proto.tensor_content) != size * dtype.itemsize:
            raise InvalidInput(f"input {name!r}: tensor_content has {len(proto.tensor_content)} "
                               f"bytes, shape {shape} of {dtype} needs {size * dtype.itemsize}")
        flat = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
        return flat.astype(dtype, copy=False).reshape(shape)
    if len(getattr(proto, field)) not in (1, size):  # counted before any is converted
        raise InvalidInput(f"input {name!r}: {len(getattr(proto, field))} values for "
                           f"shape {shape}")
    flat = _typed(proto, dtype, field, name)
    if flat.size == size:
        return flat.reshape(shape)
    return np.full(shape, flat[0], dtype=dtype)  # TensorFlow's rule: one value fills it


def from_numpy(array: Any) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto()
    write_numpy(proto, array)
    return proto


def write_numpy(proto: tensor_pb2.TensorProto, array: Any) -> None:
    """``array`` into ``proto`` (an empty TensorProto, e.g. a response's output entry):
    ``tensor_content`` for numbers, ``string_val`` for bytes."""
    arr = np.asarray(array)
    if arr.dtype.kind in "SUO":
        arr = arr.astype(object)
    dtype = tf_dtype(arr.dtype)
    if dtype == types_pb2.DT_INVALID:
        raise InvalidInput(f"dtype {arr.dtype} has no TensorFlow DataType")
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for d in arr.shape:
        dims.add(size=d)
    if arr.dtype.kind == "O":
        proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v)
                                for v in arr.reshape(-1))
    else:
        proto.tensor_content = _little_endian(arr).tobytes()


def _little_endian(arr: np.ndarray) -> np.ndarray:
    """``arr`` as little-endian values (a no-op on this machine's usual byte order)."""
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        return arr.astype(arr.dtype.newbyteorder("<"))
    return arr
