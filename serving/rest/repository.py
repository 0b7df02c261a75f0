"""Triton's model repository extension: the index, load and unload.

``POST /v2/repository/index`` lists every known model version and its state (READY or
UNAVAILABLE, with the reason a version failed); ``{"ready": true}`` lists the ready
ones only. ``POST /v2/repository/models/{name}/load`` loads the versions the version policy
wants, or reloads them in place when they already serve (the old copy answers until
the new one is warm); ``.../unload`` drains and unloads every version and keeps the
model unloaded (polling included) until it is loaded again. As in Triton, success
is 200 with an empty body and failure 400 with ``{"error": "..."}``. The API key
middleware protects these routes like every other non-health route. Unless the
repository_api setting enables them they answer 403 before the body is read (Triton,
with model control off, answers 503, which clients and balancers take as "retry").
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.models.status_reports import IndexEntry
from serving.rest.body import json_response, parse_json

logger = logging.getLogger(__name__)
# Triton's load may carry a new config or model files inline; we load from the repository.
_UNSUPPORTED = ("config",)


async def _parameters(request: Request) -> dict[str, Any]:
    """The optional body ``{"parameters": {...}}``; inline configs and files are refused."""
    body = await request.body()
    if not body.strip():
        return {}
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    params = data.get("parameters", {})
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")
    inline = [k for k in params if k in _UNSUPPORTED or k.startswith("file:")]
    if inline:
        raise InvalidInput(f"parameters {inline} are not supported: models are loaded from "
                           f"the model repository")
    return params


def build_router(dataplane: DataPlane) -> APIRouter:
    router = APIRouter(tags=["repository"])
    control = dataplane.repository

    @router.post("/v2/repository/index")
    async def repository_index(request: Request) -> Response:
        """Every known model version and its state."""
        body = await request.body()
        options = parse_json(body) if body.strip() else {}
        ready = options.get("ready", False) if isinstance(options, dict) else False
        if not isinstance(ready, bool):
            raise InvalidInput("'ready' must be true or false")
        return json_response([_index_entry(e, control.labels.labels_of(e.name, e.version))
                              for e in dataplane.repository_index(ready_only=ready)])

    @router.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request) -> Response:
        """Load the model's wanted versions, or reload them in place (zero downtime)."""
        control.check_api()
        await _parameters(request)
        loaded = await control.load_model(name)
        logger.info("loaded %s versions %s on request", name, [m.version for m in loaded])
        return Response(status_code=200)

    @router.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, request: Request) -> Response:
        """Drain and unload every version; stays unloaded until loaded again."""
        control.check_api()
        await _parameters(request)
        await control.unload_model(name)
        logger.info("unloaded %s on request", name)
        return Response(status_code=200)

    return router


def _index_entry(entry: IndexEntry, labels: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry.name, "version": str(entry.version),
                           "state": entry.state}
    if labels:
        out["labels"] = labels  # an addition to Triton's fields: version labels
    if entry.reason:
        out["reason"] = entry.reason
    return out
