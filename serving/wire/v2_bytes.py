"""Open Inference Protocol BYTES elements as raw bytes: each prefixed by its length
(4 bytes, little-endian). For v2 REST's binary tensors and v2 gRPC's raw contents.

numpy only, so REST, gRPC and the client libraries share one encoder and one decoder.
"""

from __future__ import annotations

import struct

import numpy as np

from serving.admission import object_array
from serving.errors import InvalidInput


def decode_bytes(raw: bytes, name: str, count: int | None = None) -> np.ndarray:
    """Length-prefixed elements → an object array of bytes.

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


def encode_bytes(values: np.ndarray) -> bytes:
    """An object array (str as UTF-8, bytes as they are) → length-prefixed elements."""
    parts = []
    for value in values.reshape(-1):
        if isinstance(value, str):
            data = value.encode()
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        else:  # a number in an object tensor: its text, never bytes(n)'s n zero bytes
            data = str(value).encode()
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)
