"""Hot prediction routes served straight from ASGI, ahead of FastAPI's router.

A digit or text prediction computes in tens of microseconds, so a request's cost is
the HTTP stack around it; FastAPI's route matching (a regex per route), dependency
solving and response handling were a large share of it. The same endpoint functions
stay registered with FastAPI for the OpenAPI schema and /docs; the fast lane answers
the exact paths first. It sits inside the gateway (auth, size limit) and lifetime
(arrival, disconnect) middleware, and turns errors into responses exactly as the app's
handlers do (serving/rest/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.errors import ServingError
from serving.rest.errors import (
    http_error_response,
    serving_error_response,
    unexpected_error_response,
)

Endpoint = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(self, app: ASGIApp, *, routes: Mapping[str, Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)  # exact POST path -> endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except ServingError as exc:
            response = serving_error_response(request, exc)
        except HTTPException as exc:
            response = http_error_response(exc)
        except Exception as exc:
            response = unexpected_error_response(request, exc)
        await response(scope, receive, send)
