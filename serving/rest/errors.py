"""The one place REST turns errors into responses: ``{"error": "..."}`` with the error's status.

TF Serving's REST API and the Open Inference Protocol both answer errors as
``{"error": "<message>"}``; the task endpoints use the same shape. The body says what
was wrong with the request; what the server knows beyond that (a library's message,
a stack) is logged with the request id, which the response carries in ``x-request-id``
(and, for server errors, in the message).
"""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from serving import request_ids
from serving.errors import ServingError

logger = logging.getLogger(__name__)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status_code=status,
                    media_type="application/json", headers=headers)


def serving_error_response(request: Request, exc: ServingError) -> Response:
    headers = None
    if exc.http_status == 503 and exc.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    request_id = request_ids.current.get()
    message = exc.message
    if exc.http_status >= 500:
        logger.warning("request %s: %s %s: %s%s", request_id, request.method,
                       request.url.path, exc.message, f" ({exc.detail})" if exc.detail else "")
        message = f"{message} (request id {request_id})"
    elif exc.detail:
        logger.debug("request %s: %s %s: %s (%s)", request_id, request.method,
                     request.url.path, exc.message, exc.detail)
    return error_response(exc.http_status, message, headers)


def unexpected_error_response(request: Request, exc: Exception) -> Response:
    request_id = request_ids.current.get()
    if isinstance(exc, ClientDisconnect):  # nobody reads this answer
        logger.debug("request %s: client left during %s %s", request_id, request.method,
                     request.url.path)
        return error_response(400, "client disconnected")
    logger.error("request %s: unhandled error in %s %s", request_id, request.method,
                 request.url.path, exc_info=exc)
    return error_response(500, f"internal server error (request id {request_id})")


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    return serving_error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return error_response(400, "; ".join(parts) or "invalid request")


def http_error_response(exc: HTTPException) -> Response:
    """Starlette's own HTTP errors (e.g. a multipart body without its boundary)."""
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
