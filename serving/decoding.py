"""Encoded items → a model's input tensor: where the work runs, and what it may cost.

The task plug-ins (serving/tasks/) decode their items through a Decoder, which the
dataplane owns: ``images`` (encoded images, or for digits also items given as numbers)
and ``texts`` (strings, or UTF-8 bytes). The caller has already counted the items
against the batch limit. Then:

- images: each header is read (size and format, nothing decoded) and the request's
  declared pixels checked against ``max_request_pixels``; each image then decodes
  within the pool's memory budget (its header tells how much it will take);
- where they decode: on the event loop only when the cost is provably small, decided
  from declared sizes: headers are read on the loop only when the request's encoded
  bytes total at most ``INLINE_HEADER_BYTES`` (reading a header costs time in
  proportion to its bytes), and the images decode there only when their declared
  pixels total at most ``INLINE_PIXELS`` (a 256x256 image: well under a millisecond);
  texts when their characters total at most ``INLINE_TEXT_CHARS``; digits given as
  numbers always (784 values an item). Everything else runs in the decode pool.

Every item is decoded on its own, so a bad one fails the request naming its index.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from serving.codecs.image import DeclaredImage, declared_image
from serving.config import Settings
from serving.decode_pool import DecodePool
from serving.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

INLINE_HEADER_BYTES = 64 * 1024
INLINE_PIXELS = 1 << 16
INLINE_TEXT_CHARS = 8 * 1024
_BINARY = (bytes, bytearray, memoryview)
_ITEM_ERRORS = (InvalidInput, UnsupportedMediaType, PayloadTooLarge)


@contextlib.contextmanager
def item_errors(index: int) -> Iterator[None]:
    """An item's error, prefixed with its index."""
    try:
        yield
    except _ITEM_ERRORS as exc:
        err = type(exc)(f"item {index}: {exc.message}", detail=exc.detail)
        raise err from exc


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """np.stack, without its generality for the one-item request (most of them)."""
    return rows[0][np.newaxis] if len(rows) == 1 else np.stack(rows)


class Decoder:
    def __init__(self, settings: Settings) -> None:
        self.pool = DecodePool(settings.decode_threads, settings.decode_memory_bytes)
        self.max_request_pixels = settings.max_request_pixels

    async def images(self, items: Sequence[Any], *, max_pixels: int,
                     decode: Callable[[bytes], np.ndarray], deadline: float,
                     numbers: Callable[[Any], np.ndarray] | None = None) -> np.ndarray:
        """Encoded images, each ``decode``d to one row (at most ``max_pixels`` each), and
        with ``numbers`` also items given as numbers (``numbers(item)``: a row) →
        the rows stacked."""
        binary = 0
        for i, item in enumerate(items):
            if isinstance(item, _BINARY):
                binary += len(item)
            elif numbers is None:
                raise InvalidInput(f"item {i}: an image must be bytes, got "
                                   f"{type(item).__name__}")
        if binary == 0 and numbers is not None:  # digits as numbers: the common request
            return _stack([_numbers_item(i, item, numbers) for i, item in enumerate(items)])
        declared = None
        if binary <= INLINE_HEADER_BYTES:
            declared = self._declare(items, max_pixels)
            if sum(d.pixels for d in declared if d is not None) <= INLINE_PIXELS:
                return self._decode_all(items, declared, decode, numbers, deadline, None)
        return await self.pool.run(deadline, self._image_job, items, max_pixels, declared,
                                   decode, numbers, deadline)

    def _image_job(self, items: Sequence[Any], max_pixels: int,
                   declared: list[DeclaredImage | None] | None,
                   decode: Callable[[bytes], np.ndarray],
                   numbers: Callable[[Any], np.ndarray] | None,
                   deadline: float) -> np.ndarray:
        """In a decoding thread: headers, the request's pixel budget, then each image within
        the memory budget."""
        declared = declared or self._declare(items, max_pixels)
        return self._decode_all(items, declared, decode, numbers, deadline,
                                self.pool.memory.reserve)

    def _declare(self, items: Sequence[Any], max_pixels: int) -> list[DeclaredImage | None]:
        """Each image's header (None for items given as numbers); the request's budget."""
        declared: list[DeclaredImage | None] = []
        for i, item in enumerate(items):
            with item_errors(i):
                declared.append(declared_image(bytes(item), max_pixels)
                                if isinstance(item, _BINARY) else None)
        pixels = sum(d.pixels for d in declared if d is not None)
        if pixels > self.max_request_pixels:
            raise PayloadTooLarge(f"the images of this request declare {pixels} pixels; the "
                                  f"limit is {self.max_request_pixels} per request")
        return declared

    @staticmethod
    def _decode_all(items: Sequence[Any], declared: list[DeclaredImage | None],
                    decode: Callable[[bytes], np.ndarray],
                    numbers: Callable[[Any], np.ndarray] | None, deadline: float,
                    reserve: Callable[..., contextlib.AbstractContextManager[None]] | None,
                    ) -> np.ndarray:
        rows = []
        for i, (item, header) in enumerate(zip(items, declared, strict=True)):
            with item_errors(i):
                if header is None:
                    assert numbers is not None
                    rows.append(numbers(item))
                    continue
                with (reserve(header.decode_bytes, deadline) if reserve is not None
                      else contextlib.nullcontext()):
                    rows.append(decode(bytes(item)))
        return _stack(rows)

    async def texts(self, items: Sequence[Any], *, max_chars: int,
                    encode: Callable[[list[str]], np.ndarray], deadline: float) -> np.ndarray:
        """Texts (strings, or UTF-8 bytes; at most ``max_chars`` each) → ``encode(texts)``."""
        texts = [_text(i, item, max_chars) for i, item in enumerate(items)]
        if sum(len(t) for t in texts) <= INLINE_TEXT_CHARS:
            return encode(texts)
        return await self.pool.run(deadline, encode, texts)

    def close(self) -> None:
        self.pool.close()


def _numbers_item(index: int, item: Any, numbers: Callable[[Any], np.ndarray]) -> np.ndarray:
    try:
        return numbers(item)
    except _ITEM_ERRORS:
        with item_errors(index):
            raise


def _text(index: int, item: Any, max_chars: int) -> str:
    """A text item: a string, or UTF-8 bytes (string tensors), its length checked first
    (a character takes at most 4 bytes), before any work in proportion to it."""
    if isinstance(item, str):
        if len(item) > max_chars:
            raise InvalidInput(f"text {index} has {len(item)} characters; the limit is "
                               f"{max_chars}")
        return item
    if not isinstance(item, _BINARY):
        raise InvalidInput(f"text {index} must be a string, got {type(item).__name__}")
    if len(item) > 4 * max_chars:
        raise InvalidInput(f"text {index} has {len(item)} bytes; the limit is {max_chars} "
                           f"characters")
    try:
        return bytes(item).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"text {index} is not valid UTF-8", detail=str(exc)) from exc
