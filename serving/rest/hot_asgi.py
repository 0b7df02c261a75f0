"""The hot task routes' innermost ASGI app: endpoint by exact path, errors as the app's.

The same endpoint functions stay registered with FastAPI for the OpenAPI schema and
/docs; ``ServingApp`` (app.py) sends the exact POST paths here, past FastAPI's stack,
inside the gateway (auth, size limit) and lifetime (arrival, disconnect) middleware.
Errors become responses exactly as the app's handlers make them (serving/rest/errors.py).
"""

from __future__ import annotations

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
from serving.rest.hot_routes import Endpoint, HotRoutes


class AsgiHotLane:
    def __init__(self, routes: HotRoutes) -> None:
        self.routes = routes  # ServingApp sends only the POSTs these match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.match(scope["path"])
        assert endpoint is not None, "ServingApp sends only matching paths"
        response = await answer(endpoint, Request(scope, receive))
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
