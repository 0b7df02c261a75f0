"""API keys shared by REST and gRPC: where they come from, how a request presents one,
and how it is checked.

A request presents its key as ``authorization: Bearer <key>`` (the scheme in any case)
or ``x-api-key: <key>``, surrounding spaces ignored; with both, the first header wins.
REST headers and gRPC metadata are read by the same function.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path

from serving.config import Settings


def load_api_keys(settings: Settings) -> list[bytes]:
    """Keys from settings and from a mounted secret file (one per line, '#' comments)."""
    keys = [k for k in settings.api_keys if k]
    if settings.api_keys_file is not None:
        lines = Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines()
        keys += [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    return [k.encode() for k in keys]


KEY_HEADERS = (b"authorization", b"x-api-key")
_BEARER = b"bearer "


def header_key(name: bytes, value: bytes) -> bytes:
    """The key one of KEY_HEADERS presents (lower-case ``name``)."""
    if name == b"authorization" and value[:len(_BEARER)].lower() == _BEARER:
        value = value[len(_BEARER):]
    return value.strip()


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request's headers (lower-case names) present, if any."""
    for name, value in headers:
        if name in KEY_HEADERS:
            return header_key(name, value)
    return None


def key_allowed(given: bytes | None, keys: Sequence[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit reveals which matched)."""
    if not given:
        return False
    ok = False
    for known in keys:
        ok |= hmac.compare_digest(known, given)
    return ok
