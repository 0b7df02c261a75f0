"""What front ends and engines say to each other: message kinds, headers, tensors, errors.

Every message is a ZeroMQ multipart message ``[kind, header, *frames]`` (the engine's
ROUTER socket adds the front end's identity in front). Headers are msgpack; tensor
bytes travel in the front end's shared-memory arena (inputs, ``where`` >= 0: the
offset) or as frames of their own (``INLINE``: the raw bytes; ``OBJECTS``: a msgpack
list, for string tensors). Large frames are handed to ZeroMQ without a copy.

Front end -> engine:
- HELLO ``{"pid", "arena", "arena_bytes"}``: after every (re)connection; the engine maps
  the arena file and answers WELCOME, then STATE.
- INFER ``[id, instance, deadline, [tensor, ...]]`` + frames; the engine answers exactly
  one RESULT or ERROR per id (also after a CANCEL), after which the front end may reuse
  the request's arena bytes. ``deadline`` is time.monotonic(): one clock on one host.
- CANCEL ``[id]``: the caller went away; its item leaves the engine's queue.
- ACK ``[generation]``: this front end now serves from that STATE.
- CONTROL ``[id, op, model]`` (op: load or unload): answered by DONE ``[id, error,
  placed]`` once every front end has acknowledged the table that follows the change.
- BYE: the front end is closing.

Engine -> front end: WELCOME, STATE ``{"generation", "ready", "unavailable", "models"}``, RESULT
``[id, [tensor, ...]]`` + frames, ERROR ``[id, error]``, DONE, and PING (every
``PING_S``; a front end that no longer takes messages has gone, and its items are freed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgpack
import numpy as np

from serving import errors

HELLO, WELCOME, INFER, CANCEL, ACK, CONTROL, DONE, BYE = (
    b"H", b"W", b"I", b"X", b"A", b"Q", b"D", b"B")
STATE, RESULT, ERROR, PING = b"S", b"R", b"E", b"P"
INLINE, OBJECTS = -1, -2  # where a tensor's bytes are, when not at an arena offset
PING_S = 0.5
# Below this pyzmq copies a frame anyway (tracking a zero-copy buffer costs more).
ZERO_COPY_MIN = 64 * 1024

Tensor = list[Any]  # [name, dtype.str, shape, where]


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(buffer: Any) -> Any:
    return msgpack.unpackb(buffer, raw=False, strict_map_key=False)


def inline_tensor(name: str, array: np.ndarray, frames: list[Any]) -> Tensor:
    """Describe ``array`` as a frame of its own, appended to ``frames``."""
    if array.dtype.hasobject:  # strings: their values, not pointers
        frames.append(pack(array.reshape(-1).tolist()))
        return [name, "|O", list(array.shape), OBJECTS]
    frames.append(np.ascontiguousarray(array))
    return [name, array.dtype.str, list(array.shape), INLINE]


def inline_tensors(arrays: dict[str, np.ndarray]) -> tuple[list[Tensor], list[Any]]:
    frames: list[Any] = []
    return [inline_tensor(name, a, frames) for name, a in arrays.items()], frames


def read_tensors(tensors: Iterable[Tensor], frames: Iterator[Any],
                 arena: Any = None) -> dict[str, np.ndarray]:
    """The arrays a message describes: views of the arena or of the frames (no copy)."""
    arrays = {}
    for name, dtype, shape, where in tensors:
        if where >= 0:
            if arena is None:
                raise ValueError("a tensor in shared memory, but no arena is mapped")
            arrays[name] = arena.array(where, dtype, shape)
        elif where == OBJECTS:
            arrays[name] = object_array(unpack(_buffer(next(frames))), shape)
        else:
            arrays[name] = np.frombuffer(_buffer(next(frames)), dtype=dtype).reshape(shape)
    return arrays


def object_array(values: list[Any], shape: list[int]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array.reshape(shape)


def _buffer(frame: Any) -> Any:
    return frame.buffer if hasattr(frame, "buffer") else frame


def send_copy(frames: Sequence[Any]) -> bool:
    """Whether ZeroMQ should copy these frames (all small) rather than track buffers."""
    return all((f.nbytes if isinstance(f, np.ndarray) else len(f)) < ZERO_COPY_MIN
               for f in frames)


# Errors cross the hop as [class name, message, retry-after, detail]: the front end
# raises the same ServingError the per-worker layout would.
_ERRORS: dict[str, type[errors.ServingError]] = {
    cls.__name__: cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.ServingError)}


def error_fields(exc: errors.ServingError) -> list[Any]:
    name = next(c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERRORS)
    return [name, exc.message, exc.retry_after_s, exc.detail]


def error_from(fields: list[Any]) -> errors.ServingError:
    name, message, retry_after_s, detail = fields
    cls = _ERRORS.get(name, errors.InferenceFailed)
    return cls(message, retry_after_s=retry_after_s, detail=detail)
