"""Optional API keys for gRPC: ``authorization: Bearer <key>`` or ``x-api-key`` metadata.

Health checks and the v2 liveness/readiness RPCs stay open when the settings say so,
matching the REST gateway's open health endpoints.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from serving.config import Settings

OPEN_METHODS = frozenset({
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
})
OPEN_PREFIX = "/grpc.health.v1.Health/"


def load_api_keys(settings: Settings) -> list[str]:
    keys = [k for k in settings.api_keys if k]
    if settings.api_keys_file is not None:
        lines = Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines()
        keys += [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    return keys


def _given_key(metadata: Any) -> bytes:
    for key, value in metadata or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode()
            return text.removeprefix("Bearer ").strip().encode()
        if key == "x-api-key":
            return (value if isinstance(value, str) else value.decode()).encode()
    return b""


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key")

    kind = (handler.request_streaming, handler.response_streaming)
    factory = {(False, False): grpc.unary_unary_rpc_method_handler,
               (False, True): grpc.unary_stream_rpc_method_handler,
               (True, False): grpc.stream_unary_rpc_method_handler,
               (True, True): grpc.stream_stream_rpc_method_handler}[kind]
    return factory(abort)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: list[str], *, open_health: bool) -> None:
        self._keys = [k.encode() for k in keys]
        self._open_health = open_health

    def _is_open(self, method: str) -> bool:
        return self._open_health and (method in OPEN_METHODS or method.startswith(OPEN_PREFIX))

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or self._is_open(details.method):
            return handler
        given = _given_key(details.invocation_metadata)
        if any(hmac.compare_digest(given, key) for key in self._keys):
            return handler
        return _deny(handler)
