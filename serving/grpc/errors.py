"""ServingError → gRPC status, in exactly one place (a decorator on every handler)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from serving.errors import ServingError

logger = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]


def status_code(err: ServingError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.INTERNAL)


def map_errors(handler: Handler[T]) -> Handler[T]:
    """Abort the RPC with the error's own status code and message.

    Cancellation is re-raised untouched (the client is gone; the batcher drops the
    item); anything unexpected is logged and answered INTERNAL without internals.
    """

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await handler(self, request, context)
        except ServingError as err:
            if err.retry_after_s is not None:
                context.set_trailing_metadata((("retry-after", f"{err.retry_after_s:g}"),))
            await context.abort(status_code(err), err.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("unexpected error in %s", handler.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal server error")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline as a time.monotonic() value (None when it set none)."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return time.monotonic() + max(0.0, remaining)
