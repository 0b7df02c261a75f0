"""ServingError → gRPC status, in exactly one place (a decorator on every handler).

Every call gets a request id (the client's ``x-request-id`` metadata, or a new one),
sent back in the trailing metadata; the status message says what was wrong with the
request, and what the server knows beyond that (a library's message, a stack) is
logged with the id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from serving import request_ids
from serving import stages as request_stages
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
        request_id = request_ids.start(sent_id(context))
        trailing: tuple[tuple[str, str], ...] = ((request_ids.HEADER, request_id),)
        context.set_trailing_metadata(trailing)
        # The request's stage record (serving/stages.py), for its trace spans.
        stages = request_stages.start(name, request_id)
        tracing = getattr(getattr(self, "dataplane", None), "tracing", None)
        if tracing is not None and tracing.enabled:
            tracing.note_metadata(stages, context.invocation_metadata())
        try:
            response = await handler(self, request, context)
            stages.done = time.monotonic()
            return response
        except ServingError as err:
            message = err.message
            if err.retry_after_s is not None:
                trailing += (("retry-after", f"{err.retry_after_s:g}"),)
                context.set_trailing_metadata(trailing)
            if err.http_status >= 500:
                logger.warning("request %s: %s: %s%s", request_id, handler.__qualname__,
                               err.message, f" ({err.detail})" if err.detail else "")
                message = f"{message} (request id {request_id})"
            elif err.detail:
                logger.debug("request %s: %s: %s (%s)", request_id, handler.__qualname__,
                             err.message, err.detail)
            await context.abort(status_code(err), message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("request %s: unexpected error in %s", request_id,
                             handler.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"internal server error (request id {request_id})")
        finally:
            if tracing is not None:
                tracing.finish(stages)
        raise AssertionError("unreachable: context.abort raises")

    name = f"grpc {handler.__qualname__.replace('.', '/')}"
    return wrapper


def sent_id(context: grpc.aio.ServicerContext) -> str | bytes | None:
    """The client's ``x-request-id`` metadata, if it sent one."""
    for key, value in context.invocation_metadata() or ():
        if key == request_ids.HEADER:
            return value
    return None


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline as a time.monotonic() value (None when it set none)."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return time.monotonic() + max(0.0, remaining)
