"""JSON bodies holding one numeric tensor, straight from JSON text into numpy.

A TF Serving body (``numeric_tensor``) or a task endpoint's numbers (``numeric_field``).

``{"instances": <nested numbers>}`` is how TF Serving clients send an image tensor: for a
150x150x3 image orjson takes 12 ms to build the 22,651 Python lists and 67,500 floats,
and numpy 5 ms more to turn them into an array. simdjson parses the text and copies the
numbers into one buffer in C, in about 3 ms for both.

A buffer has no shape, so the shape is read from the first element at each depth, and
the body's bracket skeleton (its ``[``, ``]`` and ``,`` in order) must be exactly the
one that shape implies: a ragged array is never reshaped into a regular one. Whatever
this does not recognise (another key, a string or {"b64"} leaf, a ragged or empty
array, malformed JSON) returns None, and the general path parses the body and says
what is wrong with it.
"""

from __future__ import annotations

import math

import numpy as np
import simdjson

_TENSOR_KEYS = frozenset({"instances", "inputs"})
_KEYS = _TENSOR_KEYS | {"signature_name"}
# bytes.translate's delete table that keeps only the skeleton characters.
_ALL_BUT_SKELETON = bytes(range(256)).translate(None, b"[],")


def numeric_tensor(body: bytes, signature: str) -> tuple[np.ndarray, bool] | None:
    """(float64 array, row format?) when ``body`` is {"instances" | "inputs": numbers}
    with at most a "signature_name" of ``signature`` (or "" or null) beside it."""
    doc = _object(body)
    if doc is None:
        return None
    keys = set(doc.keys())
    tensor_keys = keys & _TENSOR_KEYS
    if not keys <= _KEYS or len(tensor_keys) != 1:
        return None
    if doc.get("signature_name") not in (None, "", signature):
        return None
    key = tensor_keys.pop()
    array = _regular(doc[key], body, extra_key=len(keys) > 1)
    return None if array is None else (array, key == "instances")


def numeric_field(body: bytes, keys: frozenset[str]) -> tuple[str, np.ndarray] | None:
    """(key, float64 array) when ``body`` is an object with one key, one of ``keys``, whose
    value is a regular nested array of numbers: a task endpoint's {"input": [784 numbers]}
    without a Python float per number."""
    doc = _object(body)
    if doc is None or len(doc) != 1:
        return None
    key = next(iter(doc.keys()))
    if key not in keys:
        return None
    array = _regular(doc[key], body, extra_key=False)
    return None if array is None else (key, array)


def _object(body: bytes) -> simdjson.Object | None:
    try:
        doc = simdjson.Parser().parse(body)  # a parser per body: nothing shared
    except (ValueError, RuntimeError):  # malformed (ValueError), too deep (RuntimeError)
        return None
    return doc if isinstance(doc, simdjson.Object) else None


def _regular(values: object, body: bytes, *, extra_key: bool) -> np.ndarray | None:
    """The regular array of numbers ``values``, whose brackets are all of ``body``'s (a
    "," between keys when ``extra_key``)."""
    if not isinstance(values, simdjson.Array) or (shape := _shape(values)) is None:
        return None
    try:
        flat = np.frombuffer(values.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):  # a leaf that is not a number
        return None
    if flat.size != math.prod(shape):  # first: the skeleton is then no larger than the body
        return None
    skeleton = _skeleton(shape)
    allowed = (skeleton, skeleton + b",", b"," + skeleton) if extra_key else (skeleton,)
    if body.translate(None, _ALL_BUT_SKELETON) not in allowed:
        return None
    return flat.reshape(shape)


def _shape(values: simdjson.Array) -> list[int] | None:
    """Lengths along the first element at each depth; None unless nested non-empty
    arrays end in a number."""
    shape = []
    element: object = values
    while isinstance(element, simdjson.Array):
        if len(element) == 0:
            return None
        shape.append(len(element))
        element = element[0]
    if isinstance(element, bool) or not isinstance(element, (int, float)):
        return None
    return shape


def _skeleton(shape: list[int]) -> bytes:
    """The brackets and commas of a regular array of ``shape``."""
    text = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * size) + b"]"
    return text
