"""Open Inference Protocol v2 tensors ↔ numpy: typed ``contents`` and raw bytes.

Raw tensors (``raw_input_contents`` / ``raw_output_contents``) are little-endian,
row-major; BYTES elements are each prefixed by a 4-byte little-endian length.
Outputs are always written raw, as Triton does: one copy per tensor.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import numpy as np

from serving.admission import MAX_RANK, WireTensor, declared_shape, object_array
from serving.errors import InvalidInput
from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.wire.dtypes import V2_TO_NUMPY, v2_datatype
from serving.wire.v2_bytes import decode_bytes, encode_bytes

# Which InferTensorContents field carries each datatype (FP16 travels raw only).
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
             "BYTES": "bytes_contents"}


def _spec(tensor: pb.ModelInferRequest.InferInputTensor) -> tuple[np.dtype, list[int], int]:
    if tensor.datatype not in V2_TO_NUMPY:
        raise InvalidInput(f"input {tensor.name!r}: unknown datatype {tensor.datatype!r}")
    shape = list(declared_shape(tensor.name, list(tensor.shape[:MAX_RANK + 1])))
    return np.dtype(V2_TO_NUMPY[tensor.datatype]), shape, math.prod(shape)


def from_raw(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes) -> np.ndarray:
    dtype, shape, size = _spec(tensor)
    if dtype.kind == "O":
        return decode_bytes(raw, tensor.name, size).reshape(shape)
    if len(raw) != size * dtype.itemsize:
        raise InvalidInput(f"input {tensor.name!r}: {len(raw)} raw bytes, shape {shape} of "
                           f"{tensor.datatype} needs {size * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False) \
        .reshape(shape)


def from_contents(tensor: pb.ModelInferRequest.InferInputTensor) -> np.ndarray:
    dtype, shape, size = _spec(tensor)
    if tensor.datatype == "FP16":
        raise InvalidInput(f"input {tensor.name!r}: FP16 must be sent in raw_input_contents")
    values = getattr(tensor.contents, _CONTENTS[tensor.datatype])
    if len(values) != size:  # counted before any is converted
        raise InvalidInput(f"input {tensor.name!r}: {len(values)} values for shape {shape}")
    if dtype.kind == "O":
        return object_array(values).reshape(shape)
    try:
        return np.asarray(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"input {tensor.name!r}: values out of range for "
                           f"{tensor.datatype}", detail=str(exc)) from exc


def request_inputs(request: pb.ModelInferRequest) -> dict[str, WireTensor]:
    """Every input of a ModelInferRequest, declared (raw or typed, not mixed); each builds
    its array only once the dataplane has admitted its declaration."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for "
                           f"{len(request.inputs)} inputs (raw must be used for all inputs)")
    inputs: dict[str, WireTensor] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise InvalidInput(f"input {tensor.name!r} is given twice")
        dtype, shape, _ = _spec(tensor)
        build = functools.partial(from_raw, tensor, raw[i]) if raw else \
            functools.partial(from_contents, tensor)
        inputs[tensor.name] = WireTensor(tensor.name, dtype, tuple(shape), build)
    return inputs


def add_output(response: pb.ModelInferResponse, name: str, array: Any) -> None:
    arr = np.asarray(array)
    if arr.dtype.kind in "SU":
        arr = arr.astype(object)
    response.outputs.add(name=name, datatype=v2_datatype(arr.dtype), shape=arr.shape)
    if arr.dtype.kind == "O":
        response.raw_output_contents.append(encode_bytes(arr))
    elif arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        response.raw_output_contents.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    else:  # already little-endian: one copy, into the message
        response.raw_output_contents.append(arr.tobytes())
