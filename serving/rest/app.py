"""The REST app factory: routers per protocol, one error translation, pure ASGI middleware."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from serving.auth import load_api_keys
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.rest import metrics as metrics_routes
from serving.rest import repository, tasks, tfserving, v2
from serving.rest.docs import install_docs
from serving.rest.errors import install_error_handlers
from serving.rest.fastlane import FastLane
from serving.rest.lifetime import RequestLifetimeMiddleware
from serving.rest.middleware import GatewayMiddleware

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from serving.metrics import Metrics

DESCRIPTION = ("Task endpoints (/v1/{digit,text,image}:predict), TensorFlow Serving REST "
               "(/v1/models/...), Open Inference Protocol v2 (/v2/...), Prometheus /metrics.")


def create_app(settings: Settings, dataplane: DataPlane, metrics: Metrics | None = None, *,
               lifespan: Callable[[FastAPI], Any] | None = None) -> FastAPI:
    """Build the app; ``lifespan`` (optional) runs around serving, e.g. to load models."""
    app = FastAPI(title="modelserve", version=dataplane.server_metadata()["version"],
                  description=DESCRIPTION, docs_url=None, redoc_url=None,
                  lifespan=lifespan or _no_lifespan,
                  # FastAPI's built-in OpenTelemetry asks the global providers on every
                  # request (about a tenth of a digit request's cost); /metrics is ours.
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    app.state.dataplane = dataplane
    app.state.settings = settings
    install_error_handlers(app)
    task_routes = tasks.endpoints(dataplane, settings)
    app.include_router(tasks.build_router(task_routes))
    app.include_router(tfserving.build_router(dataplane, settings))
    app.include_router(v2.build_router(dataplane, settings))
    app.include_router(repository.build_router(dataplane))
    app.include_router(metrics_routes.build_router(metrics))
    install_docs(app)
    # Innermost: the hot task routes skip FastAPI's router (see fastlane.py).
    app.add_middleware(FastLane, routes=task_routes)
    app.add_middleware(GatewayMiddleware, max_body_bytes=settings.max_request_bytes,
                       api_keys=load_api_keys(settings),
                       open_health_and_metrics=settings.open_health_and_metrics)
    # Deadlines count from arrival; a client that hangs up leaves the batch queue.
    app.add_middleware(RequestLifetimeMiddleware)
    # Outermost, so CORS preflights (which carry no API key) are answered first.
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    return app


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
