"""Pure ASGI middleware (no per-request tasks): request ids, body size limit and optional
API keys.

With keys configured, health and /metrics stay open when ``open_health_and_metrics``
says so, and the pages a browser loads (the playground at / and /docs, with their
assets) when ``open_pages`` does: a browser cannot add a key to a page it navigates
to, and the calls those pages make still carry one.

The size limit is checked on Content-Length before the body is read and, for
chunked uploads, while it streams in; both answer 413.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import request_ids
from serving import stages as request_stages
from serving.auth import KEY_HEADERS, header_key, key_allowed
from serving.errors import PayloadTooLarge
from serving.rest.errors import error_body
from serving.tracing import Tracing

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
# The pages and the live view they poll: a browser cannot add a key to a page it opens.
PAGE_PATHS = frozenset({"/", "/docs", "/openapi.json", "/playground/api/stats"})
PAGE_PREFIXES = ("/playground/static/", "/docs/static/")


async def _send_error(send: Send, status: int, message: str,
                      extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = error_body(message)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_keys: list[bytes],
                 open_health_and_metrics: bool = True, open_pages: bool = True) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.keys = api_keys
        self.open_paths = (OPEN_PATHS if open_health_and_metrics else frozenset()) | \
            (PAGE_PATHS if open_pages else frozenset())
        self.open_prefixes = PAGE_PREFIXES if open_pages else ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refuse(scope)
        if refusal is not None:
            await _send_error(send, *refusal)
            return
        if any(key == b"content-length" for key, _ in scope["headers"]):
            await self.app(scope, receive, send)  # the HTTP parser enforces Content-Length
            return
        await self.app(scope, self._counting(receive), send)

    def refuse(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, headers) when the request's headers already rule it out:
        no valid API key (401), or a declared length over the limit (413)."""
        length = None
        auth = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key in KEY_HEADERS and auth is None:
                auth = header_key(key, value)
        if self.keys and not self._open(scope["path"]) and not self._allowed(auth):
            return 401, "missing or invalid API key", [(b"www-authenticate", b"Bearer")]
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, self.too_large().message, []
        return None

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body exceeds the limit of {self.max_body} bytes")

    def _open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def _allowed(self, key: bytes | None) -> bool:
        return key_allowed(key, self.keys)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise self.too_large()
            return message
        return limited


class RequestIdMiddleware:
    """Sets the request's id (the client's ``x-request-id``, or a new one) for the handlers'
    logs, and adds it to the response. Starts the request's stage record
    (serving/stages.py): an inference response gets its ``Server-Timing`` header
    (``server_timing``) and, once sent, its trace spans (``tracing``)."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing | None = None,
                 server_timing: bool = False) -> None:
        self.app = app
        self.tracing = tracing
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == _HEADER), None)
        request_id = request_ids.start(sent)
        header = (_HEADER, request_id.encode())
        stages = request_stages.start(f"{scope['method']} {scope['path']}", request_id)
        tracing = self.tracing
        if tracing is not None and tracing.enabled:
            tracing.note_headers(stages, scope["headers"])

        async def receive_noted() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                stages.received = time.monotonic()  # the whole body is in
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), header]
                if stages.model:  # an inference request: the dataplane saw it
                    stages.done = time.monotonic()
                    if self.server_timing:
                        headers.append((_SERVER_TIMING, stages.server_timing().encode()))
                message["headers"] = headers
            await send(message)
        try:
            await self.app(scope, receive_noted, send_with_id)
        finally:
            if tracing is not None:
                tracing.finish(stages)


_HEADER = request_ids.HEADER.encode()
_SERVER_TIMING = b"server-timing"
