"""Pure ASGI middleware (no per-request tasks): body size limit and optional API keys.

The size limit is checked on Content-Length before the body is read and, for
chunked uploads, while it streams in; both answer 413.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.config import Settings
from serving.errors import PayloadTooLarge

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})


def load_api_keys(settings: Settings) -> list[str]:
    keys = [k for k in settings.api_keys if k]
    if settings.api_keys_file is not None:
        for line in Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    return keys


async def _send_error(send: Send, status: int, message: str,
                      extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_keys: list[str],
                 open_health_and_metrics: bool = True) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.keys = [k.encode() for k in api_keys]
        self.open_paths = OPEN_PATHS if open_health_and_metrics else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        auth = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key in (b"authorization", b"x-api-key"):
                auth = value.removeprefix(b"Bearer ").strip() if key == b"authorization" \
                    else value.strip()
        if self.keys and scope["path"] not in self.open_paths and not self._allowed(auth):
            await _send_error(send, 401, "missing or invalid API key",
                              [(b"www-authenticate", b"Bearer")])
            return
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await _send_error(send, 413, f"request body exceeds the limit of "
                                             f"{self.max_body} bytes")
                return
            await self.app(scope, receive, send)  # the HTTP parser enforces Content-Length
            return
        await self.app(scope, self._counting(receive), send)

    def _allowed(self, key: bytes | None) -> bool:
        if not key:
            return False
        ok = False
        for known in self.keys:  # no early exit: timing does not reveal which key matched
            ok |= hmac.compare_digest(known, key)
        return ok

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise PayloadTooLarge(f"request body exceeds the limit of "
                                          f"{self.max_body} bytes")
            return message
        return limited
