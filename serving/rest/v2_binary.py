"""Triton's binary tensor data extension for the v2 REST API.

A request whose JSON header is followed by raw tensor bytes says so with the
``Inference-Header-Content-Length`` header; each binary input carries
``"parameters": {"binary_data_size": N}`` and its bytes follow in input order
(little-endian; BYTES elements are each prefixed by a 4-byte little-endian length).
Outputs asked for with ``"binary_data": true`` (or request-level
``"binary_data_output": true``) are returned the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from serving.admission import WireTensor, declared_shape
from serving.errors import InvalidInput
from serving.rest.body import json_response
from serving.wire.dtypes import V2_TO_NUMPY, v2_datatype
from serving.wire.v2_bytes import decode_bytes, encode_bytes

HEADER_LENGTH = "inference-header-content-length"
ALL = "*"


def split_body(headers: Mapping[str, str], body: bytes) -> tuple[bytes, bytes]:
    value = headers.get(HEADER_LENGTH)
    if value is None:
        return body, b""
    if not (value.isascii() and value.isdigit()) or int(value) > len(body):
        raise InvalidInput(f"{HEADER_LENGTH} {value!r} does not fit a body of {len(body)} bytes")
    n = int(value)
    return body[:n], body[n:]


def _parameters(obj: dict[str, Any]) -> dict[str, Any]:
    params = obj.get("parameters")
    return params if isinstance(params, dict) else {}


def binary_size(item: dict[str, Any]) -> int | None:
    size = _parameters(item).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or size < 0:
        raise InvalidInput(f"input {item.get('name')!r}: binary_data_size must be a count")
    return size


def read_tensor(item: dict[str, Any], binary: bytes, offset: int, size: int
                ) -> tuple[WireTensor, int]:
    """One binary input, declared; its array is built once admitted (BYTES elements are
    then read up to the declared count only)."""
    name, datatype = item.get("name"), item.get("datatype")
    if not isinstance(name, str) or datatype not in V2_TO_NUMPY:
        raise InvalidInput(f"input {name!r}: needs a name and a datatype, got {datatype!r}")
    shape = declared_shape(name, item.get("shape"))
    if offset + size > len(binary):
        raise InvalidInput(f"input {name!r}: binary_data_size {size} exceeds the binary data")
    raw = memoryview(binary)[offset:offset + size]
    tensor = WireTensor(name, np.dtype(V2_TO_NUMPY[datatype]), shape,
                        lambda: _array(name, datatype, shape, raw))
    return tensor, offset + size


def _array(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        return decode_bytes(bytes(raw), name, count).reshape(shape)
    dtype = np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(f"input {name!r}: shape {list(shape)} of {datatype} needs "
                           f"{count * dtype.itemsize} bytes, got {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
    return arr.reshape(shape)


def requested_outputs(body: dict[str, Any]) -> tuple[list[str] | None, set[str]]:
    everything = bool(_parameters(body).get("binary_data_output", False))
    outputs = body.get("outputs")
    if outputs is None:
        return None, {ALL} if everything else set()
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise InvalidInput("'outputs' must be a list of objects with a name")
    names = [o["name"] for o in outputs]
    binary = {o["name"] for o in outputs
              if _parameters(o).get("binary_data", everything)}
    return names or None, binary


def _raw(arr: np.ndarray) -> bytes:
    if arr.dtype == object:
        return encode_bytes(arr)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_response(response: dict[str, Any], outputs: dict[str, np.ndarray],
                    as_binary: set[str]) -> Response:
    tensors, blobs = [], []
    for name, arr in outputs.items():
        tensor: dict[str, Any] = {"name": name, "datatype": v2_datatype(arr.dtype),
                                  "shape": list(arr.shape)}
        if ALL in as_binary or name in as_binary:
            raw = _raw(arr)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = arr.ravel() if arr.dtype != object else arr.ravel().tolist()
        tensors.append(tensor)
    response["outputs"] = tensors
    if not blobs:
        return json_response(response)
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})
