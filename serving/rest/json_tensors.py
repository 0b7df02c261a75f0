"""JSON tensors straight from text into numpy: a TF Serving body holding one numeric
tensor (``numeric_tensor``), a task endpoint's numbers (``numeric_field``), and the numeric
``data`` of v2 requests (``v2_request``).

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

A v2 request names each input's shape itself: its numeric ``data`` (flat or nested) is
copied into one buffer, and the dataplane checks its size against the declared shape;
the rest of the request (names, shapes, parameters) becomes Python objects as usual.
Either way a number costs 8 bytes, not a Python float (32 bytes with its list slot), and
no time on the event loop beyond simdjson's parse.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import simdjson

from serving.errors import PayloadTooLarge

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


_MAX_INPUTS = 64  # more is not a request for any model here: the general path says why
# simdjson buffer types by v2 datatype: doubles, signed or unsigned 64-bit integers.
_V2_BUFFER: dict[str, Literal["d", "i", "u"]] = {
    "FP16": "d", "FP32": "d", "FP64": "d", "INT8": "i", "INT16": "i", "INT32": "i",
    "INT64": "i", "UINT8": "u", "UINT16": "u", "UINT32": "u", "UINT64": "u"}


def v2_request(body: bytes, max_plain_values: int) -> dict[str, Any] | None:
    """A v2 JSON request as Python objects, each input's numeric ``data`` as one numpy
    array; None when simdjson cannot parse it or it is not a request (the general path
    says why). Anything else becomes Python objects only up to ``max_plain_values``
    elements per field (413 past it)."""
    try:
        doc = simdjson.Parser().parse(body)  # a parser per body: nothing shared
    except (ValueError, RuntimeError):
        return None
    if not isinstance(doc, simdjson.Object) or not isinstance(
            inputs := doc.get("inputs"), simdjson.Array) or len(inputs) > _MAX_INPUTS:
        return None
    request = {key: _plain(doc[key], max_plain_values, key) for key in doc
               if key != "inputs"}
    request["inputs"] = [_v2_input(item, max_plain_values) for item in inputs]
    return request


def _v2_input(item: Any, limit: int) -> Any:
    if not isinstance(item, simdjson.Object):
        return _plain(item, limit, "inputs")
    fields = {key: _plain(item[key], limit, key) for key in item if key != "data"}
    if "data" in item:
        fields["data"] = _v2_data(item["data"], fields.get("datatype"), limit,
                                  fields.get("name"))
    return fields


def _v2_data(data: Any, datatype: Any, limit: int, name: Any) -> Any:
    kind = _V2_BUFFER.get(datatype) if isinstance(datatype, str) else None
    if kind is not None and isinstance(data, simdjson.Array):
        try:
            return np.frombuffer(data.as_buffer(of_type=kind),
                                 dtype={"d": np.float64, "i": np.int64, "u": np.uint64}[kind])
        except (TypeError, ValueError, RuntimeError):
            pass  # not all numbers of that kind: the general conversion names the problem
    return _plain(data, limit, f"data of input {name!r}")


def _plain(value: Any, limit: int, what: str) -> Any:
    """``value`` as Python objects, if it holds at most ``limit`` elements."""
    if not isinstance(value, simdjson.Object | simdjson.Array):
        return value
    if _elements(value, limit) > limit:
        raise PayloadTooLarge(f"{what}: more than {limit} JSON elements")
    return value.as_dict() if isinstance(value, simdjson.Object) else value.as_list()


def _elements(value: Any, limit: int) -> int:
    """Scalars in a (nested) simdjson array or object, counted until past ``limit``."""
    if isinstance(value, simdjson.Object):
        value = value.values()
    elif not isinstance(value, simdjson.Array):
        return 1
    total = 0
    for element in value:
        total += _elements(element, limit)
        if total > limit:
            break
    return total
