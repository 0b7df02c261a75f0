"""The REST app factory: routers per protocol, one error translation, pure ASGI middleware."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.auth import load_api_keys
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.rest import metrics as metrics_routes
from serving.rest import playground, repository, task_routes, tfserving, v2
from serving.rest.docs import install_docs
from serving.rest.errors import install_error_handlers
from serving.rest.hot_asgi import AsgiHotLane
from serving.rest.hot_protocol import ProtocolHotLane
from serving.rest.hot_routes import HotRoutes
from serving.rest.lifetime import RequestLifetimeMiddleware
from serving.rest.middleware import GatewayMiddleware, RequestIdMiddleware
from serving.tasks import TASKS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from serving.metrics import Metrics

DESCRIPTION = ("Task endpoints (/v1/{{{tasks}}}:predict), TensorFlow Serving REST "
               "(/v1/models/...), Open Inference Protocol v2 (/v2/...), Prometheus /metrics.")


class ServingApp(FastAPI):
    """FastAPI, with the hot task routes answered before its middleware stack and router.

    A digit or text prediction computes in tens of microseconds, so its cost is the
    HTTP stack around it: FastAPI's and Starlette's layers (error and telemetry
    wrappers, body limit, route regexes, dependency solving) were half of it. The hot
    lane runs the same endpoint functions behind only the layers they need: CORS when
    enabled, arrival and disconnect (lifetime.py), API keys and size limits
    (middleware.py), and the app's error shapes (hot_asgi.py).
    """

    hot_routes: HotRoutes = HotRoutes({})
    hot_lane: ASGIApp | None = None
    # The same routes for the HTTP protocol to answer without ASGI (hot_protocol.py).
    protocol_lane: ProtocolHotLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.hot_lane is not None and scope["type"] == "http"
                and scope["method"] == "POST" and self.hot_routes.match(scope["path"])):
            await self.hot_lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, dataplane: DataPlane, metrics: Metrics | None = None, *,
               lifespan: Callable[[FastAPI], Any] | None = None) -> ServingApp:
    """Build the app; ``lifespan`` (optional) runs around serving, e.g. to load models."""
    app = ServingApp(title="modelserve", version=dataplane.server_metadata()["version"],
                  description=DESCRIPTION.format(tasks=",".join(TASKS.names())),
                  docs_url=None, redoc_url=None,
                  lifespan=lifespan or _no_lifespan,
                  # FastAPI's built-in OpenTelemetry asks the global providers on every
                  # request (about a tenth of a digit request's cost); /metrics is ours.
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    app.state.dataplane = dataplane
    app.state.settings = settings
    install_error_handlers(app)
    # The task endpoints and the tensor predict routes: answered by the hot lanes, and
    # registered with FastAPI too (OpenAPI, /docs, and CORS requests).
    hot_routes = HotRoutes(task_routes.endpoints(dataplane, settings),
                           tfserving=tfserving.predict_endpoint(dataplane, settings),
                           v2=v2.infer_endpoint(dataplane, settings))
    app.include_router(task_routes.build_router(hot_routes.exact))
    app.include_router(tfserving.build_router(dataplane, settings, hot_routes.tfserving))
    app.include_router(v2.build_router(dataplane, settings, hot_routes.v2))
    app.include_router(repository.build_router(dataplane))
    app.include_router(metrics_routes.build_router(metrics))
    install_docs(app)
    if settings.playground:
        playground.install(app, dataplane, metrics)
    layers = _layers(settings, dataplane)
    hot: ASGIApp = AsgiHotLane(hot_routes)
    for cls, options in layers:  # innermost first; add_middleware puts the last outermost
        app.add_middleware(cls, **options)
        hot = cls(hot, **options)  # the hot task routes: the same layers, not FastAPI's
        if isinstance(hot, GatewayMiddleware):
            gateway = hot
    app.hot_routes, app.hot_lane = hot_routes, hot
    app.protocol_lane = ProtocolHotLane(hot_routes, gateway, cors=bool(settings.cors_origins),
                                        tracing=dataplane.tracing,
                                        server_timing=settings.server_timing)
    return app


def _layers(settings: Settings, dataplane: DataPlane) -> list[tuple[Any, dict[str, Any]]]:
    """The pure ASGI layers every request passes, innermost first."""
    layers: list[tuple[Any, dict[str, Any]]] = [
        (GatewayMiddleware, {"max_body_bytes": settings.max_request_bytes,
                             "api_keys": load_api_keys(settings),
                             "open_health_and_metrics": settings.open_health_and_metrics,
                             "open_pages": settings.open_pages}),
        # Deadlines count from arrival; a client that hangs up leaves the batch queue.
        (RequestLifetimeMiddleware, {}),
        # Outside the gateway, so its refusals (401, 413) carry the id too.
        # Also where a request's stages start: Server-Timing and trace spans.
        (RequestIdMiddleware, {"tracing": dataplane.tracing,
                               "server_timing": settings.server_timing}),
    ]
    # Outermost, so CORS preflights (which carry no API key) are answered first.
    if settings.cors_origins:
        layers.append((CORSMiddleware, {"allow_origins": settings.cors_origins,
                                        "allow_methods": ["GET", "POST"],
                                        "allow_headers": ["*"]}))
    return layers


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
