"""GET /metrics: Prometheus exposition (merged over workers in multiprocess mode)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from serving.metrics import Metrics


def build_router(metrics: Metrics | None) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", include_in_schema=False)
    async def render() -> Response:
        if metrics is None:
            return Response(b"", media_type="text/plain")
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router
