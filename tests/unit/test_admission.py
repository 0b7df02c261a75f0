"""Admission: declared shapes and item counts checked against the model before building."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from serving.admission import MAX_RANK, Admission, WireTensor, check_items, declared_shape
from serving.errors import InvalidInput, PayloadTooLarge
from serving.models.manifest import TensorSpec


def never_built(name: str, dtype: str, shape: tuple[int, ...]) -> WireTensor:
    def build() -> np.ndarray:
        raise AssertionError("built before it was admitted")
    return WireTensor(name, np.dtype(dtype), shape, build)


@pytest.fixture
async def digit(rest_client):
    return rest_client.dataplane.model("digit")  # pixels float32 [-1, 784], batch <= 32


@pytest.mark.parametrize(("tensor", "error", "message"), [
    (never_built("pixels", "float32", (4096, 784)), InvalidInput, "maximum batch size of 32"),
    (never_built("pixels", "float32", (1 << 40, 1 << 40)), InvalidInput, "must have shape"),
    (never_built("pixels", "float32", (1, 784, 1)), InvalidInput, "must have shape"),
    (never_built("pixels", "float64", (1, 784)), InvalidInput, "must be float32"),
    (never_built("pixels", "float32", (0, 784)), InvalidInput, "at least one item"),
    (never_built("pixels", "object", (33,)), InvalidInput, "33 items in one request"),
    (never_built("pixels", "object", (2, 2)), InvalidInput, "shape [n] or [n, 1]"),
])
async def test_declarations_are_refused_before_anything_is_built(digit, tensor, error,
                                                                 message) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        Admission(1 << 20).check(digit, {"pixels": tensor})


async def test_names_are_checked_before_anything_is_built(digit) -> None:
    with pytest.raises(InvalidInput, match=r"unknown: \['bogus'\], missing: \['pixels'\]"):
        Admission(1 << 20).check(digit, {"bogus": never_built("bogus", "float32", (1, 784))})


async def test_what_fits_is_admitted(digit) -> None:
    Admission(1 << 20).check(digit, {"pixels": never_built("pixels", "float32", (32, 784))})
    Admission(1 << 20).check(digit, {"pixels": never_built("pixels", "object", (32, 1))})
    check_items(digit, 32)
    with pytest.raises(InvalidInput, match="33 items"):
        check_items(digit, 33)


def test_a_dynamic_inner_dimension_is_bounded_by_the_message_size() -> None:
    # A model whose input has a second dynamic dimension.
    served = SimpleNamespace(name="seq", codec=None,
                             batching=SimpleNamespace(max_batch_size=8),
                             manifest=SimpleNamespace(name="seq", inputs=[
                                 TensorSpec(name="ids", dtype="int64", shape=[-1, -1])]))
    admission = Admission(max_message_bytes=1000)
    admission.check(served, {"ids": never_built("ids", "int64", (8, 125))})  # type: ignore
    with pytest.raises(PayloadTooLarge, match="declares 1008 elements"):
        admission.check(served, {"ids": never_built("ids", "int64", (8, 126))})  # type: ignore
    with pytest.raises(InvalidInput, match="taken only by models with a task"):
        admission.check(served, {"ids": never_built("ids", "object", (1,))})  # type: ignore


@pytest.mark.parametrize("dims", [[-1, 784], [1.5], [True], "1,784", [1] * (MAX_RANK + 1), None])
def test_declared_shape_refuses_what_cannot_be_a_shape(dims) -> None:
    with pytest.raises(InvalidInput, match="shape must be a list"):
        declared_shape("x", dims)


def test_declared_shape_keeps_huge_dimensions_for_the_admission_to_refuse() -> None:
    assert declared_shape("x", [2**63 - 1, 0]) == (2**63 - 1, 0)
