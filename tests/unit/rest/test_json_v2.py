"""v2 JSON requests parsed by simdjson: orjson's values, with flat numeric data as numpy
arrays of the datatype's buffer type; None (the general path) for what it cannot read."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from serving.rest.json_v2 import parse_body


def _same(got: Any, want: Any) -> None:
    """``got`` equals orjson's ``want``, numpy arrays standing for lists of numbers."""
    if isinstance(got, np.ndarray):
        assert isinstance(want, list)
        np.testing.assert_array_equal(got, np.asarray(want))
        assert got.tolist() == want  # every digit kept
    elif isinstance(got, dict):
        assert isinstance(want, dict) and got.keys() == want.keys()
        for key in got:
            _same(got[key], want[key])
    elif isinstance(got, list):
        assert isinstance(want, list) and len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            _same(a, b)
    else:
        assert got == want and type(got) is type(want)


REQUESTS = [
    {"id": "7", "inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32",
                            "data": np.random.default_rng(0).random(784).round(4).tolist()}],
     "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}]},
    {"inputs": [{"name": "ids", "shape": [2, 3], "datatype": "INT64",
                 "data": [1, -2, 3, 9007199254740993, 5, -9223372036854775808]},
                {"name": "u", "shape": [2], "datatype": "UINT64",
                 "data": [18446744073709551615, 0]},
                {"name": "mask", "shape": [2], "datatype": "BOOL", "data": [True, False]},
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good film"]}],
     "parameters": {"priority": 1}},
    {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]},
    {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2.5, -3e-7]}]},
    {"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1.5, 2]}]},
    {"inputs": [{"name": "x", "shape": [0], "datatype": "FP32", "data": []}]},
    {"inputs": [{"name": "x", "datatype": "NOPE", "data": [1, 2]}, 5, "text"]},
    {"inputs": {"not": "a list"}}, {"model_name": "digit"},
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_the_same_values_as_orjson(request_: dict) -> None:
    body = orjson.dumps(request_)
    got = parse_body(body)
    assert got is not None
    _same(got, orjson.loads(body))


def test_numbers_travel_in_one_buffer_of_the_datatypes_kind() -> None:
    got = parse_body(orjson.dumps(REQUESTS[1]))
    assert got is not None
    assert [type(i["data"]) for i in got["inputs"]] == [np.ndarray, np.ndarray, list, list]
    assert got["inputs"][0]["data"].dtype == np.int64
    assert got["inputs"][1]["data"].dtype == np.uint64
    fp32 = parse_body(orjson.dumps(REQUESTS[0]))
    assert fp32 is not None and fp32["inputs"][0]["data"].dtype == np.float64
    nested = parse_body(orjson.dumps(REQUESTS[2]))
    assert nested is not None and nested["inputs"][0]["data"] == [[1, 2], [3, 4]]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'{"inputs": [{"data": [1e400]}]}', b'{"inputs": [NaN]}',
    b'{"inputs": [], "inputs": []}', b'{"inputs": [{"name": "a", "name": "b"}]}',
    b'{"parameters": {"a": 1, "a": 2}}',
])
def test_what_it_cannot_read_goes_to_the_general_parser(body: bytes) -> None:
    assert parse_body(body) is None
