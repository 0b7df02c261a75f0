"""uvicorn's httptools protocol, with the hot task routes answered without ASGI.

A digit prediction computes in microseconds; what it costs is the HTTP stack around
it. Even after ``ServingApp`` (app.py) skips FastAPI's layers, each request still
passed uvicorn's proxy-headers wrapper, two ASGI middlewares and four ASGI messages.
Here the protocol itself hands a complete POST to one of the task routes straight to
its endpoint and writes the answer, keeping what those layers did:

- arrival time stamped when the headers are parsed (deadlines count from it);
- API keys and the declared body size (``GatewayMiddleware.refuse``), and the size of a
  chunked body while it streams in, answered 401/413 before any work;
- a client that hangs up cancels its request (leaving the batch queue unread);
- errors become the app's error responses (hot_asgi.answer);
- the request id (``x-request-id``, RequestIdMiddleware's job on the ASGI path).

The connection limits (head size, slow heads and bodies, the body budget, connection
count) apply to every request, hot or not: this protocol is a LimitedHttpToolsProtocol
(connection_limits.py), and a hot request releases its share of the body budget when
it ends.

Everything else (pipelining, keep-alive, 100-continue, flow control, graceful shutdown)
stays uvicorn's: a hot request still has uvicorn's RequestResponseCycle; its answer is
written in one piece with the cycle's own bookkeeping (``_write_whole``), or through
the cycle's ``send`` whenever that one write would skip something ``send`` does.
Requests with an ``Origin`` header take the ASGI path when CORS is on, so the CORS
middleware sees them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from serving import request_ids
from serving import stages as request_stages
from serving.errors import PayloadTooLarge
from serving.rest.connection_limits import (
    ConnectionLimits,
    LimitedHttpToolsProtocol,
    limited_class,
)
from serving.rest.errors import error_response, serving_error_response
from serving.rest.hot_asgi import Endpoint, answer
from serving.rest.hot_routes import HotRoutes
from serving.rest.middleware import GatewayMiddleware
from serving.tracing import Tracing

logger = logging.getLogger(__name__)
_REQUEST_ID = request_ids.HEADER.encode()
_SERVER_TIMING = b"server-timing"


class ProtocolHotLane:
    """What the protocol needs to answer the hot routes itself."""

    def __init__(self, routes: HotRoutes, gateway: GatewayMiddleware, *, cors: bool,
                 tracing: Tracing | None = None, server_timing: bool = False) -> None:
        self.routes = routes
        self.gateway = gateway
        self.cors = cors
        self.tracing = tracing
        self.server_timing = server_timing

    def endpoint_for(self, scope: dict[str, Any]) -> Endpoint | None:
        if scope["method"] != "POST":
            return None
        endpoint = self.routes.match(scope["path"])
        if endpoint is not None and self.cors and any(
                key == b"origin" for key, _ in scope["headers"]):
            return None
        return endpoint

    async def serve(self, cycle: RequestResponseCycle, endpoint: Endpoint) -> None:
        scope = cast(dict[str, Any], cycle.scope)
        arrived = scope["state"]["arrived"] = time.monotonic()
        request_id_text = request_ids.start(next(
            (v for k, v in scope["headers"] if k == _REQUEST_ID), None))
        request_id = request_id_text.encode()
        # What RequestIdMiddleware does on the ASGI path: the stage record, for
        # Server-Timing and the trace (the lane-parity test keeps the two alike).
        stages = request_stages.start(f"POST {scope['path']}", request_id_text, arrived)
        tracing = self.tracing
        if tracing is not None and tracing.tracer is not None:
            tracing.note_headers(stages, scope["headers"])
        refusal = self.gateway.refuse(scope)
        if refusal is not None:
            status, message, headers = refusal
            await _send(cycle, error_response(status, message,
                                              {k.decode(): v.decode() for k, v in headers}),
                        request_id)
            return
        try:
            body = await self._read_body(cycle)
        except PayloadTooLarge as exc:  # a chunked upload past the limit
            await _send(cycle, serving_error_response(Request(scope), exc), request_id)
            return
        if body is None:
            return  # the client left
        stages.received = time.monotonic()
        response = await answer(endpoint, _ReadRequest(scope, body))
        if stages.model:  # the dataplane saw it
            stages.done = time.monotonic()
            if self.server_timing:
                response.raw_headers.append((_SERVER_TIMING, stages.server_timing().encode()))
        await _send(cycle, response, request_id)
        if tracing is not None and tracing.tracer is not None:
            tracing.finish(stages)

    async def _read_body(self, cycle: RequestResponseCycle) -> bytes | None:
        """The whole body, or None when the client left; PayloadTooLarge past the limit."""
        chunks = []
        seen = 0
        while True:
            message = cast(dict[str, Any], await cycle.receive())
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            seen += len(chunk)
            if seen > self.gateway.max_body:
                raise self.gateway.too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _ReadRequest(Request):
    """A Request whose body the protocol has already read: ``body()`` returns it without
    going through ``receive``; ``stream()`` (multipart forms) replays it once."""

    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        super().__init__(scope, _replay(body))
        self._read = body

    async def body(self) -> bytes:
        return self._read


def _replay(body: bytes) -> Any:
    """An ASGI receive that gives the already-read body once, then waits forever
    (a hot request's disconnect cancels its task instead)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()  # never resolves; cancelled with the request
        raise AssertionError("unreachable")
    return receive


async def _send(cycle: RequestResponseCycle, response: Any, request_id: bytes) -> None:
    headers = [*response.raw_headers, (_REQUEST_ID, request_id)]
    if _write_whole(cycle, response.status_code, headers, response.body):
        return
    await cycle.send({"type": "http.response.start", "status": response.status_code,
                      "headers": headers})
    await cycle.send({"type": "http.response.body", "body": response.body})


def _write_whole(cycle: RequestResponseCycle, status: int,
                 headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """The whole response in one transport write, with the bookkeeping uvicorn's ``send``
    does after its two (status line and headers, then the body): one system call, not
    two, and no per-header checks for headers this module made (lower-case names, values
    from the app's own responses and ``request_ids``, which admits printable ASCII only).
    False, with nothing written, when uvicorn's ``send`` must do it: flow control paused,
    the client gone, an access log line to write, no Content-Length."""
    if cycle.flow.write_paused or cycle.disconnected or cycle.access_log or \
            cycle.response_started or not any(n == b"content-length" for n, _ in headers):
        return False
    parts = [STATUS_LINE[status]]
    closing = False
    for name, value in (*cycle.default_headers, *headers):
        if name == b"connection" and b"close" in value.lower().split(b","):
            closing = True
        parts += (name, b": ", value, b"\r\n")
    if closing:
        cycle.keep_alive = False
    elif not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", body)
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.transport.write(b"".join(parts))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


def protocol_class(lane: ProtocolHotLane,
                   limits: ConnectionLimits) -> type[LimitedHttpToolsProtocol]:
    """The limited httptools protocol bound to ``lane`` and ``limits``
    (uvicorn.Config(http=...))."""

    class HotHttpToolsProtocol(LimitedHttpToolsProtocol):
        _hot_task: asyncio.Task[None] | None = None

        def _start_app_task(self, cycle: RequestResponseCycle, reserved: int) -> None:
            endpoint = lane.endpoint_for(cast(dict[str, Any], cycle.scope))
            if endpoint is None:
                super()._start_app_task(cycle, reserved)
                return
            task = self.loop.create_task(_run(cycle, lane, endpoint))
            task.add_done_callback(self.tasks.discard)
            if reserved:
                task.add_done_callback(lambda _: self.limits.release_body(reserved))
            self.tasks.add(task)
            self._hot_task = task

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            task = self._hot_task
            if task is not None and not task.done():
                task.cancel()  # the client left: its queued item is dropped unread

    return limited_class(limits, HotHttpToolsProtocol)


async def _run(cycle: RequestResponseCycle, lane: ProtocolHotLane, endpoint: Endpoint) -> None:
    try:
        await lane.serve(cycle, endpoint)
    except asyncio.CancelledError:
        if not cycle.disconnected:
            raise
        logger.debug("%s: client disconnected; request dropped", cycle.scope["path"])
    except Exception:  # answer() handles the endpoint's errors; this is the protocol's
        logger.exception("hot route %s failed", cycle.scope["path"])
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
    finally:
        cycle.on_response = lambda: None  # as uvicorn's run_asgi leaves it
