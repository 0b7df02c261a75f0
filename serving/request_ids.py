"""Request ids: every response carries one (``x-request-id``), every logged error names it.

A client's own id is echoed when it sends a usable one (printable ASCII without
spaces, at most 128 characters, so it is safe in a log line and a header); otherwise
the server makes one: a random per-process prefix and a counter, unique across
replicas and cheap enough for the hot path. The id of the request being served lives
in a context variable, set by each protocol where a request starts (REST: a
middleware and the HTTP protocol's hot lane; gRPC: the error decorator).
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re

HEADER = "x-request-id"
MAX_LENGTH = 128
_USABLE = re.compile(rb"[!-~]{1,%d}" % MAX_LENGTH)  # printable ASCII, no spaces
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)

current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def accept(value: bytes | str | None) -> str:
    """The client's id when usable, else a new one."""
    if value is not None:
        raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
        if _USABLE.fullmatch(raw):
            return raw.decode("ascii")
    return new_id()


def start(value: bytes | str | None) -> str:
    """Accept (or make) the id of the request starting in this context, and set it."""
    request_id = accept(value)
    current.set(request_id)
    return request_id
