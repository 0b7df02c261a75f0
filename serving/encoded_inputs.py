"""Encoded items given as string tensors: the model's codec turns them into its tensor.

TF Serving, Triton and KServe users send images to image models as strings/BYTES (the
encoded file), and text to text models as strings. Such a tensor given for a numeric
model input goes through the model's codec (the same one the task endpoints use), one
item per element of the batch dimension. Shared by gRPC (both protocols) and REST v2.
A generic model (no task, no codec) takes its tensors as sent: strings only where its
input is a string tensor, which the dataplane checks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np

from serving import tasks
from serving.errors import InvalidInput

if TYPE_CHECKING:
    from serving.models.registry import ServedModel

# Encoded images above this size are decoded in a worker thread (keeps the loop free).
_THREAD_DECODE_BYTES = 32 * 1024


def _items(name: str, arr: np.ndarray) -> list[bytes]:
    if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 1):
        raise InvalidInput(f"input {name!r}: string items must have shape [n] or [n, 1], "
                           f"got {list(arr.shape)}")
    return [v.encode() if isinstance(v, str) else bytes(v) for v in arr.reshape(-1)]


def _decode(served: ServedModel, items: list[bytes]) -> np.ndarray:
    task = served.manifest.task
    codec: Any = served.codec  # the codec class matches the manifest's task
    if task == "image":
        return tasks.decode_images(codec, items)
    if task == "digit":
        return tasks.decode_digits(codec, items)
    try:
        texts = [b.decode("utf-8") for b in items]
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"text must be UTF-8: {exc}") from exc
    return tasks.encode_texts(codec, texts)


async def decode_string_inputs(served: ServedModel,
                               inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replace string tensors given for numeric inputs by the codec's model tensors."""
    if served.codec is None:
        return inputs
    specs = {spec.name: spec for spec in served.manifest.inputs}
    out = dict(inputs)
    for name, arr in inputs.items():
        spec = specs.get(name)
        if arr.dtype.kind != "O" or spec is None or spec.dtype == "object":
            continue  # unknown names and numeric tensors are the dataplane's to validate
        items = _items(name, arr)
        if sum(len(b) for b in items) > _THREAD_DECODE_BYTES:
            out[name] = await asyncio.to_thread(_decode, served, items)
        else:
            out[name] = _decode(served, items)
    return out
