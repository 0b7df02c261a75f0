"""Open Inference Protocol (KServe v2) datatypes and BYTES framing, for every protocol module.

numpy only, so REST, gRPC and the client libraries share one table and one decoder.
"""

from __future__ import annotations

import struct

import numpy as np

from serving.admission import object_array
from serving.errors import InvalidInput

V2_TO_NUMPY = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
               "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32",
               "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
               "BYTES": "object"}
NUMPY_TO_V2 = {v: k for k, v in V2_TO_NUMPY.items()}


def decode_bytes(raw: bytes, name: str, count: int | None = None) -> np.ndarray:
    """4-byte little-endian length-prefixed elements → object array of bytes.

    With ``count`` the data must hold exactly that many elements.
    """
    items: list[bytes] = []
    offset = 0
    while offset < len(raw) and (count is None or len(items) < count):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES data ends inside a length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES element {len(items)} is truncated")
        items.append(raw[offset:offset + length])
        offset += length
    if count is not None and len(items) != count:
        raise InvalidInput(f"input {name!r}: raw BYTES data ends before element {len(items)}")
    if offset != len(raw):
        raise InvalidInput(f"input {name!r}: {len(raw) - offset} bytes after {len(items)} "
                           f"elements")
    return object_array(items)
