"""An Open Inference Protocol v2 JSON request, with each input's numbers read into numpy.

orjson builds one Python number per tensor element before the tensor code turns them
into an array (about 20 µs for one 784-number digit, several times the model's time).
Here simdjson parses the body and each input whose ``data`` is a flat list of numbers
is copied into one numpy buffer in C: float64 for FP datatypes, int64 or uint64 for
integer ones (so integers beyond 2^53 keep every digit). Everything else (names,
shapes, parameters, outputs, BYTES and BOOL data, nested data) becomes the same Python
values orjson would give, and the v2 route reads the result as it reads orjson's.

None for anything this does not recognise (malformed JSON, duplicate keys, a number
simdjson cannot hold): the caller then parses the body the general way, which also
words the error.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import simdjson

# Datatype → simdjson buffer type and the numpy dtype of that buffer.
_Kind = Literal["d", "i", "u"]
_FLOAT: tuple[_Kind, type[np.generic]] = ("d", np.float64)
_INT: tuple[_Kind, type[np.generic]] = ("i", np.int64)
_UINT: tuple[_Kind, type[np.generic]] = ("u", np.uint64)
_BUFFERS = {"FP16": _FLOAT, "FP32": _FLOAT, "FP64": _FLOAT, "INT8": _INT, "INT16": _INT,
            "INT32": _INT, "INT64": _INT, "UINT8": _UINT, "UINT16": _UINT, "UINT32": _UINT,
            "UINT64": _UINT}


class _Unrecognised(Exception):
    pass


def parse_body(body: bytes) -> dict[str, Any] | None:
    try:
        doc = simdjson.Parser().parse(body)  # a parser per body: nothing shared
    except (ValueError, RuntimeError):  # malformed (ValueError), too deep (RuntimeError)
        return None
    if not isinstance(doc, simdjson.Object):
        return None
    try:
        out = _members(doc, skip="inputs")
        if "inputs" in doc:
            items = doc["inputs"]
            out["inputs"] = [_input(i) for i in items] if isinstance(
                items, simdjson.Array) else _plain(items)
    except _Unrecognised:
        return None
    return out


def _members(obj: simdjson.Object, skip: str = "") -> dict[str, Any]:
    keys = list(obj.keys())
    if len(set(keys)) != len(keys):
        raise _Unrecognised  # which value wins is the general parser's rule
    return {k: _plain(obj[k]) for k in keys if k != skip}


def _plain(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        _members(value)  # duplicate keys anywhere: the general path
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _input(item: Any) -> Any:
    if not isinstance(item, simdjson.Object):
        return _plain(item)
    out = _members(item, skip="data")
    if "data" in item:
        out["data"] = _numbers(item["data"], out.get("datatype"))
    return out


def _numbers(data: Any, datatype: Any) -> Any:
    """A flat list of numbers as one array of the datatype's buffer type; else as is."""
    spec = _BUFFERS.get(datatype) if isinstance(datatype, str) else None
    if spec is None or not isinstance(data, simdjson.Array) or len(data) == 0:
        return _plain(data)
    kind, dtype = spec
    try:
        flat = np.frombuffer(data.as_buffer(of_type=kind), dtype=dtype)
    except (TypeError, ValueError, RuntimeError):  # not all numbers of that kind
        return _plain(data)
    return flat if flat.size == len(data) else _plain(data)  # nested: the general path
