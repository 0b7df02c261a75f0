"""Connection-level limits for REST, in uvicorn's httptools protocol (docs/reliability.md).

uvicorn bounds neither the size of a request's head nor the time a client takes to send
it or its body, and httptools gathers a long header by repeated concatenation, so one
client sending a multi-megabyte header in small pieces, or hundreds of connections
trickling bodies, could hold the event loop or the pod's memory. Here:

- connections: past ``max_connections`` (uvicorn's ``limit_concurrency``) requests are
  answered 503 except health and /metrics; past it plus ``HEALTH_RESERVE`` new
  connections are closed at once;
- the head (request line and headers) is counted as it arrives, and once complete:
  past ``max_header_bytes`` the answer is 431 and the connection closes;
- a head not complete ``header_timeout_s`` after connecting (or after its first byte,
  on a kept-alive connection), or a body not complete ``body_timeout_s`` after its
  head, is answered 408 and the connection closed;
- request bodies held at once are bounded by ``max_body_bytes_in_flight``, counted by
  their declared length before they are read (chunked: at ``max_request_bytes``); a
  request that does not fit is answered 503 with Retry-After, its body unread.

This subclasses uvicorn's private protocol, like hot_protocol.py: uvicorn's version is
capped in pyproject.toml and tests/integration/rest/test_hot_protocol.py fails when
the internals it relies on move.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from serving import request_ids
from serving.config import Settings
from serving.rest.errors import error_body
from serving.rest.middleware import OPEN_PATHS

HEALTH_RESERVE = 32  # connections past max_connections kept for health probes
SWEEP_S = 1.0  # how often heads and bodies are checked against their timeouts (at most)
LINGER_S = 2.0  # how long a refused client still sending is read (and ignored) before closing
ASGIApp = Any


class ConnectionLimits:
    """The limits and the state every connection of one server shares: the body budget,
    and one sweep over the connections every SWEEP_S for heads and bodies past their time
    (cheaper per request than a timer each: a request only notes when it started)."""

    def __init__(self, settings: Settings) -> None:
        self.max_connections = settings.max_connections
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout_s = settings.header_timeout_s
        self.body_timeout_s = settings.body_timeout_s
        self.max_request_bytes = settings.max_request_bytes
        self.body_budget = settings.max_body_bytes_in_flight
        self.bodies_in_flight = 0
        self.sweep_s = min(SWEEP_S, settings.header_timeout_s / 4, settings.body_timeout_s / 4)
        self._connections: set[Any] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def admit(self, headers: list[tuple[bytes, bytes]], head_bytes: int
              ) -> tuple[int, int | None]:
        """(the head's size, bytes reserved for the body: 0 for none, None when it does not
        fit), in one pass over the headers."""
        body = 0
        for name, value in headers:
            head_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                body = int(value) if value.isdigit() else 0  # the gateway refuses the rest
            elif name == b"transfer-encoding":
                body = self.max_request_bytes
        if body and self.bodies_in_flight + body > self.body_budget:
            return head_bytes, None
        self.bodies_in_flight += body
        return head_bytes, body

    def release_body(self, size: int) -> None:
        self.bodies_in_flight -= size

    def watch(self, connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Sweep ``connections`` (uvicorn's set of open ones) while any is open."""
        self._connections = connections
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.sweep_s, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(self._connections):
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.check_timeouts(now)
        self._sweeper = loop.call_later(self.sweep_s, self._sweep, loop) \
            if self._connections else None


def _declared_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"transfer-encoding" or (name == b"content-length" and value != b"0")
               for name, value in headers)


def refusal_app(status: int, message: str,
                extra: tuple[tuple[bytes, bytes], ...] = ()) -> ASGIApp:
    """An ASGI app answering ``{"error": message}`` at once. The body, if any, is not
    buffered: uvicorn discards it as it arrives (``extra`` may close the connection)."""
    body = error_body(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (request_ids.HEADER.encode(), request_ids.new_id().encode()), *extra]})
        await send({"type": "http.response.body", "body": body})
    return app


def _releasing(app: ASGIApp, limits: ConnectionLimits, size: int) -> ASGIApp:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        finally:
            limits.release_body(size)
    return wrapped


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits above; ``limits`` is set by ``limited_class``."""

    limits: ConnectionLimits
    _in_head = True
    _lingering = False
    _heads = 0  # heads completed on this connection
    _head_bytes = 0
    # loop.time() when the current head (or body) began; None when none is under way.
    _head_since: float | None = None
    _body_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections + HEALTH_RESERVE:
            self.transport.close()
            return
        self._head_since = self.loop.time()  # a silent connection is a slow head too
        self.limits.watch(self.connections, self.loop)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # answered and closing: what the client still sends is dropped
        in_head, heads = self._in_head, self._heads
        if in_head and self._head_since is None:  # the first byte of a kept-alive request
            self._head_since = self.loop.time()
        super().data_received(data)
        if in_head and self._heads == heads and not self.transport.is_closing():
            # A whole chunk inside one head: count it (a complete head is measured
            # exactly in _start_asgi_task), so a huge header is refused within a read or
            # two of passing the limit instead of being gathered whole.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer_and_close(431, "request line and headers exceed "
                                            f"{self.limits.max_header_bytes} bytes",
                                       linger=True)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._head_bytes = 0
        self._head_since = None
        super().on_headers_complete()
        if self.parser is not None and _declared_body(self.headers):
            self._body_since = self.loop.time()

    def on_message_complete(self) -> None:
        self._body_since = None
        self._in_head = True  # the next bytes are the next request's head
        super().on_message_complete()

    def check_timeouts(self, now: float) -> None:
        """From the limits' sweep: a head or a body past its time is answered 408."""
        if self._head_since is not None and now - self._head_since > \
                self.limits.header_timeout_s:
            self._answer_and_close(408, "request headers took too long")
        elif self._body_since is not None and now - self._body_since > \
                self.limits.body_timeout_s:
            self._answer_and_close(408, "request body took too long")

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGIApp) -> None:
        scope = cast(dict[str, Any], cycle.scope)
        head_bytes, reserved = self.limits.admit(
            scope["headers"], len(scope["raw_path"]) + len(scope["query_string"]))
        if head_bytes > self.limits.max_header_bytes:
            app = refusal_app(431, f"request line and headers exceed "
                                   f"{self.limits.max_header_bytes} bytes",
                              ((b"connection", b"close"),))
        elif app is not self.app and scope["path"] in OPEN_PATHS:
            app = self.app  # past max_connections uvicorn answers 503: not to health
        elif reserved is None and app is self.app:
            app = refusal_app(503, "too many request bodies in flight; retry shortly",
                              ((b"retry-after", b"1"),))
        if app is not self.app or reserved is None:
            if reserved:
                self.limits.release_body(reserved)
            super()._start_asgi_task(cycle, app)
            return
        self._start_app_task(cycle, reserved)

    def _start_app_task(self, cycle: RequestResponseCycle, reserved: int) -> None:
        """The app's task for an admitted request holding ``reserved`` bytes of the body
        budget until it ends; the hot lane (hot_protocol.py) takes its routes here."""
        app = _releasing(self.app, self.limits, reserved) if reserved else self.app
        super()._start_asgi_task(cycle, app)

    def _answer_and_close(self, status: int, message: str, *, linger: bool = False) -> None:
        """Answer (unless a response has begun) and close; the request's handler, if any,
        sees a disconnect and its later answer is dropped. ``linger``: for a client still
        sending, half-close and drop its bytes for LINGER_S before closing, so that it
        reads the answer instead of a reset (as nginx's lingering close)."""
        cycle = self.cycle
        if self.transport.is_closing() or self._lingering:
            return
        if cycle is None or cycle.response_complete or not cycle.response_started:
            body = error_body(message)
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: application/json\r\n",
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self._head_since = self._body_since = None
        if linger and self.transport.can_write_eof():
            self._lingering = True
            self.transport.write_eof()
            self.flow.resume_reading()
            self.loop.call_later(LINGER_S, self.transport.close)
            return
        self.transport.close()

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()


def limited_class(limits: ConnectionLimits,
                  base: type[LimitedHttpToolsProtocol] = LimitedHttpToolsProtocol,
                  ) -> type[LimitedHttpToolsProtocol]:
    """``base`` bound to one server's limits (uvicorn.Config(http=...))."""
    return type(base.__name__, (base,), {"limits": limits})
