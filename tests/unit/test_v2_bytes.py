"""The shared v2 BYTES framing: round trip, exact counts, truncation."""

from __future__ import annotations

import struct

import pytest

from serving.errors import InvalidInput
from serving.wire.v2_bytes import decode_bytes


def frame(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def test_round_trip_with_and_without_count() -> None:
    raw = frame(b"a", b"", b"\xff\x00png")
    assert decode_bytes(raw, "x").tolist() == [b"a", b"", b"\xff\x00png"]
    assert decode_bytes(raw, "x", 3).tolist() == [b"a", b"", b"\xff\x00png"]
    assert decode_bytes(b"", "x").tolist() == []


@pytest.mark.parametrize("raw, count, words", [
    (frame(b"abc")[:5], None, "truncated"),
    (frame(b"abc") + b"\x01", None, "length prefix"),
    (frame(b"a", b"b"), 3, "ends before element 2"),
    (frame(b"a", b"b"), 1, "bytes after 1 elements"),
])
def test_malformed_framing_names_the_problem(raw: bytes, count: int | None, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        decode_bytes(raw, "img", count)

