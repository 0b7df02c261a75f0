"""Optional API keys for gRPC: ``authorization: Bearer <key>`` or ``x-api-key`` metadata.

Health checks and the v2 liveness/readiness RPCs stay open when the settings say so,
matching the REST gateway's open health endpoints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from serving.auth import key_allowed, presented_key

OPEN_METHODS = frozenset({
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
})
OPEN_PREFIX = "/grpc.health.v1.Health/"


def _given_key(metadata: Any) -> bytes | None:
    """The key in the call's metadata (keys are lower-case in gRPC; values str, or bytes
    for ``-bin`` keys), read as REST reads headers."""
    return presented_key((key.encode(), value.encode() if isinstance(value, str) else value)
                         for key, value in metadata or ())


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
    def __init__(self, keys: list[bytes], *, open_health: bool) -> None:
        self._keys = keys
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
        if key_allowed(given, self._keys):
            return handler
        return _deny(handler)
