"""TF Serving bodies holding one numeric tensor, parsed by simdjson: the same arrays as the
general path, and None (the general path) for everything else, ragged arrays included."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from serving.rest.json_tensors import numeric_field, numeric_tensor

SIGNATURE = "serving_default"


@pytest.mark.parametrize("shape", [(3,), (2, 784), (1, 150, 150, 3), (2, 1, 4, 1)])
def test_regular_arrays_match_the_general_parse(shape: tuple[int, ...]) -> None:
    values = np.random.default_rng(0).random(shape)
    for key, row in (("instances", True), ("inputs", False)):
        body = orjson.dumps({key: values.tolist()})
        array, got_row = numeric_tensor(body, SIGNATURE)
        assert got_row is row
        np.testing.assert_array_equal(array, np.asarray(orjson.loads(body)[key]))


def test_signature_key_order_whitespace_and_integers() -> None:
    for body in (b'{"signature_name": "serving_default", "instances": [[1, 2], [3, 4e0]]}',
                 b'{"instances": [[1, 2], [3, 4.0]], "signature_name": ""}',
                 b'{"instances": [[1, 2], [3, 4]], "signature_name": null}',
                 json.dumps({"instances": [[1, 2], [3, 4]]}, indent=4).encode()):
        array, _ = numeric_tensor(body, SIGNATURE)
        np.testing.assert_array_equal(array, [[1, 2], [3, 4]])


@pytest.mark.parametrize("body", [
    b'{"instances": [[1, 2], [3]]}',  # ragged
    b'{"instances": [[1, 2, 3], [4], [5, 6]]}',  # ragged, same count as a (3, 2) array
    b'{"instances": [[1, [2]], [3, 4]]}',  # mixed depth
    b'{"instances": []}', b'{"instances": [[]]}', b'{"instances": 1}',
    b'{"instances": [[1, "2"]]}', b'{"instances": [[true, 1]]}', b'{"instances": [null]}',
    b'{"instances": [{"b64": "AAAA"}]}', b'{"instances": [{"pixels": [1, 2]}]}',
    b'{"instances": [1], "inputs": [1]}', b'{"inputs": {"pixels": [1, 2]}}',
    b'{"instances": [1], "extra": 1}', b'{"instances": [1], "signature_name": "other"}',
    b'{"instances": [1], "signature_name": "[a,b]"}',
    b'{"instances": [1], "instances": [2]}',  # duplicate key
    b'{"instances": [1e400]}', b'{"instances": [NaN]}', b'{"instances": [1,]}',
    b'[1, 2]', b'', b'not json', b'{"instances": ' + b'[' * 5000 + b']' * 5000 + b'}',
])
def test_everything_else_takes_the_general_path(body: bytes) -> None:
    assert numeric_tensor(body, SIGNATURE) is None


def test_a_shape_claimed_by_first_elements_only_costs_nothing() -> None:
    """Long first rows at every depth imply 10^12 numbers; the body holds a few thousand."""
    first = [0.5] * 1000
    for _ in range(3):
        first = [first] + [0.5] * 999
    assert numeric_tensor(orjson.dumps({"instances": first}), SIGNATURE) is None


DIGIT_KEYS = frozenset({"input", "inputs"})


@pytest.mark.parametrize("value", [
    np.random.default_rng(1).random(784).round(4).tolist(),  # floats with 4 decimals
    list(range(256)) * 3 + list(range(16)),  # integer intensities
    np.random.default_rng(2).random((28, 28)).tolist(),
    np.random.default_rng(3).random((3, 784)).tolist(),
])
def test_task_numbers_match_the_general_parse(value: list) -> None:
    for key in DIGIT_KEYS:
        body = orjson.dumps({key: value})
        got_key, array = numeric_field(body, DIGIT_KEYS)
        assert got_key == key
        np.testing.assert_array_equal(array, np.asarray(value, dtype=np.float64))


@pytest.mark.parametrize("body", [
    b'{"input": [1, 2], "top_k": 3}',  # another key
    b'{"input": [1], "input": [2]}',  # duplicate key
    b'{"text": [1, 2]}', b'{"input": [[1, 2], [3]]}', b'{"input": [{"b64": "AAAA"}]}',
    b'{"input": ["1"]}', b'{"input": []}', b'{"input": 5}', b'[1, 2]', b'{}', b'',
    b'{"input": [1e400]}',
])
def test_task_bodies_it_does_not_recognise_take_the_general_path(body: bytes) -> None:
    assert numeric_field(body, DIGIT_KEYS) is None
