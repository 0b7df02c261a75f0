"""parse_version: one parser for REST paths, v2 REST and gRPC."""

from __future__ import annotations

import time

import pytest

from serving.errors import InvalidInput
from serving.versions import MAX_VERSION, parse_version


@pytest.mark.parametrize(("text", "version"), [(None, None), ("", None), ("1", 1),
                                               ("0042", 42), (str(MAX_VERSION), MAX_VERSION)])
def test_versions(text, version) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "²", "latest", " 1",
                                  str(MAX_VERSION + 1), "9" * 5000])
def test_not_versions_are_400_echoed_short(text) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidInput, match="positive integer") as err:
        parse_version(text)
    assert len(err.value.message) < 120
    assert time.perf_counter() - start < 0.1  # no int() of thousands of digits
