"""The hot task routes' innermost ASGI app: endpoint by exact path, errors as the app's.

The same endpoint functions stay registered with FastAPI for the OpenAPI schema and
/docs; ``ServingApp`` (app.py) sends the exact POST paths here, past FastAPI's stack,
inside the gateway (auth, size limit) and lifetime (arrival, disconnect) middleware.
Errors become responses exactly as the app's handlers make them (serving/rest/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from serving.errors import ServingError
from serving.rest.errors import (
    http_error_response,
    serving_error_response,
    unexpected_error_response,
)

Endpoint = Callable[[Request], Awaitable[Response]]


class AsgiHotLane:
    def __init__(self, routes: Mapping[str, Endpoint]) -> None:
        self.routes = dict(routes)  # exact POST path -> endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await answer(self.routes[scope["path"]], request)
        await response(scope, receive, send)


async def answer(endpoint: Endpoint, request: Request) -> Response:
    """The endpoint's response, or the error response the app's handlers would give."""
    try:
        return await endpoint(request)
    except ServingError as exc:
        return serving_error_response(request, exc)
    except HTTPException as exc:
        return http_error_response(exc)
    except Exception as exc:
        return unexpected_error_response(request, exc)
