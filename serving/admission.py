"""What a request may cost, checked from what it declares before anything is built.

Every protocol describes each input tensor as a ``WireTensor``: its name, element type
and declared shape, and a ``build`` that makes the array. The dataplane checks the
description against the model first (known name, element type, rank, fixed
dimensions, the batch within the model's maximum batch size, the element count within
the spec times that limit) and only then builds, so a message of a few bytes that
declares gigabytes (TensorFlow's one-value fill, a v2 shape with empty data) is
refused for what it declares. String tensors (BYTES, DT_STRING) are encoded items
(images, texts) for a task model: counted against the batch limit before any element
is converted.

Dimensions the model leaves dynamic besides the batch are bounded by the largest
message the server accepts, one element per byte: no encoding carries an element in
less than a byte, except the one-value fill, which this check exists for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.errors import InvalidInput, PayloadTooLarge, TooManyItems

if TYPE_CHECKING:
    from serving.models.manifest import Manifest, TensorSpec
    from serving.models.served_model import ServedModel

OBJECT = np.dtype(object)
# numpy allows 64 dimensions; no model here has more than a handful. Bounding the rank
# first keeps the element count a product of a few numbers (a product of a million
# 64-bit dimensions would take seconds to compute).
MAX_RANK = 32


@dataclass(frozen=True)
class WireTensor:
    """One input as its protocol declares it; ``build`` makes the array once admitted."""

    name: str
    dtype: np.dtype  # object: strings / BYTES (encoded items)
    shape: tuple[int, ...]
    build: Callable[[], np.ndarray]

    @classmethod
    def of(cls, name: str, array: np.ndarray) -> WireTensor:
        """An array the protocol has already built (its cost was bounded by its bytes)."""
        return cls(name, array.dtype, tuple(array.shape), lambda: array)

    @property
    def encoded(self) -> bool:
        return self.dtype == OBJECT


def object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (strings, bytes): np.array would make a 2-D array
    of equal-length lists, or a fixed-width bytes array."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def declared_shape(name: str, dims: Any) -> tuple[int, ...]:
    """A protocol's shape: at most MAX_RANK non-negative integers, else 400 naming it."""
    if not isinstance(dims, (list, tuple)) or len(dims) > MAX_RANK or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise InvalidInput(f"input {name!r}: shape must be a list of at most {MAX_RANK} "
                           f"non-negative integers")
    return tuple(dims)


def max_batch(served: ServedModel) -> int:
    if served.batching is None:  # not loaded: infer() says so
        return 1
    return served.batching.max_batch_size


def check_items(served: ServedModel, count: int) -> None:
    """The item cap, checked before any item is decoded."""
    limit = max_batch(served)
    if count > limit:
        raise TooManyItems(f"model {served.name}: {count} items in one request exceed the "
                           f"maximum batch size of {limit}")


def check_declared(spec: TensorSpec, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Element type and shape (−1 = any) of one input, from what the request declares."""
    if dtype != np.dtype(spec.dtype):
        raise InvalidInput(f"input {spec.name!r} must be {spec.dtype}, got {dtype}")
    if len(shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)):
        raise InvalidInput(f"input {spec.name!r} must have shape {spec.shape} "
                           f"(-1 = any), got {list(shape)}")
    if spec.batched and shape[0] < 1:
        raise InvalidInput(f"input {spec.name!r} needs at least one item in its batch dimension")
    if 0 in shape:
        raise InvalidInput(f"input {spec.name!r} has an empty dimension: {list(shape)}")


def validate_tensor(spec: TensorSpec, arr: np.ndarray) -> None:
    """A built input: its declaration, and finiteness of floats."""
    check_declared(spec, arr.dtype, tuple(arr.shape))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInput(f"input {spec.name!r} contains NaN or infinity")


def check_names(manifest: Manifest, names: set[str]) -> None:
    expected = {spec.name for spec in manifest.inputs}
    unknown = sorted(names - expected)
    missing = sorted(expected - names)
    if unknown or missing:
        raise InvalidInput(f"model {manifest.name} expects inputs {sorted(expected)}; "
                           f"unknown: {unknown}, missing: {missing}")


def validate_inputs(manifest: Manifest, inputs: Mapping[str, np.ndarray]) -> None:
    check_names(manifest, set(inputs))
    for spec in manifest.inputs:
        validate_tensor(spec, inputs[spec.name])
    if manifest.batched:  # an unbatched model's first dims are not rows
        sizes = {arr.shape[0] for arr in inputs.values()}
        if len(sizes) > 1:
            raise InvalidInput(f"inputs disagree on the batch size: {sorted(sizes)}")


def as_text(name: str, arr: np.ndarray) -> np.ndarray:
    """A string tensor's elements as str: ONNX Runtime reads bytes as their repr."""
    if all(isinstance(v, str) for v in arr.flat):
        return arr
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, value in enumerate(arr.flat):
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"input {name!r}: element {i} is not UTF-8 text, "
                                   f"which a string tensor needs") from exc
        elif not isinstance(value, str):
            raise InvalidInput(f"input {name!r}: element {i} is "
                               f"{type(value).__name__}, not a string")
        flat[i] = value
    return out


class Admission:
    """The declared-cost checks, with the server's message size limit."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes

    def check(self, served: ServedModel, tensors: Mapping[str, WireTensor]) -> None:
        """Every input known, none missing, each within the model's spec times its batch
        limit: before any is built."""
        manifest = served.manifest
        check_names(manifest, set(tensors))
        limit = max_batch(served)
        for spec in manifest.inputs:
            tensor = tensors[spec.name]
            if tensor.encoded and spec.dtype != "object":
                self._check_items(served, spec, tensor)
            else:  # numbers, or strings the model takes as a string tensor
                self._check_tensor(spec, tensor, limit)

    @staticmethod
    def _check_items(served: ServedModel, spec: TensorSpec, tensor: WireTensor) -> None:
        shape = tensor.shape
        if served.codec is None:
            raise InvalidInput(f"input {spec.name!r} must be {spec.dtype}; strings (encoded "
                               f"items) are taken only by models with a task")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(f"input {spec.name!r}: string items must have shape [n] or "
                               f"[n, 1], got {list(shape)}")
        if shape[0] < 1:
            raise InvalidInput(f"input {spec.name!r} needs at least one item")
        check_items(served, shape[0])

    def _check_tensor(self, spec: TensorSpec, tensor: WireTensor, limit: int) -> None:
        check_declared(spec, tensor.dtype, tensor.shape)
        if spec.batched and tensor.shape[0] > limit:
            raise TooManyItems(f"input {spec.name!r}: {tensor.shape[0]} items in one request "
                               f"exceed the maximum batch size of {limit}")
        elements = math.prod(tensor.shape)  # Python ints: no overflow
        # An unbatched input's whole shape is its one item.
        per_item, items = (spec.shape[1:], limit) if spec.batched else (spec.shape, 1)
        allowed = (self.max_message_bytes if -1 in per_item
                   else items * math.prod(per_item))
        if elements > allowed:
            raise PayloadTooLarge(f"input {spec.name!r} declares {elements} elements; the "
                                  f"model takes at most {allowed} in one request")
