"""The playground: a page at / to try every model in a browser, and what only it needs.

The page (static/playground/, plain HTML, CSS and JavaScript, no CDN) calls the
public API like any client: the repository index and v2 metadata to list models,
the task endpoints and v2 infer to predict. Two routes exist for it alone:

- ``GET /playground/api/stats``: the last minute per model (requests/s, p50/p99
  latency, batch sizes, queue depth) from ``Metrics.live``, polled by the live view.
- ``POST /playground/api/model-input/{name}``: an image as the image model sees it
  (decoded, oriented, resized by the model's own codec) as a PNG.

The page gets its settings (the gRPC port, whether an API key is needed, the registered
tasks) inlined into its HTML, so it needs no call before it can ask for a key.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from serving.auth import load_api_keys
from serving.codecs import ImageCodec
from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.rest.body import JSON, json_response
from serving.rest.payloads import read_payload
from serving.tasks import TASKS
from serving.tasks.image import ImageTask
from serving.versions import parse_version

if TYPE_CHECKING:
    from serving.metrics import Metrics

PAGE_DIR = Path(__file__).parent / "static" / "playground"
STATIC = "/playground/static"
_CONFIG_MARK = "{{PLAYGROUND_CONFIG}}"
# A snapshot takes a millisecond or two of the event loop; however often it is asked
# for (many open pages, or a client polling in a loop), it is computed at most this often.
STATS_CACHE_S = 0.25
_IMAGES = ImageTask()  # reads an image request's body as the image task route does


def page_config(app: FastAPI, api_key_required: bool) -> dict[str, Any]:
    """What the page needs before its first call."""
    settings = app.state.settings
    # The bound port once the gRPC server runs (serving/server.py); settings may say 0.
    grpc_port = getattr(app.state, "grpc_port", None)
    if grpc_port is None and settings.grpc_port > 0:
        grpc_port = settings.grpc_port
    return {"grpc_port": grpc_port, "api_key_required": api_key_required,
            "server_version": app.version, "tasks": TASKS.names()}


def render_page(template: str, config: dict[str, Any]) -> str:
    # "</" cannot end the script element early when escaped; the JSON stays the same.
    inline = json.dumps(config).replace("</", "<\\/")
    return template.replace(_CONFIG_MARK, inline)


def model_input_png(pixels: np.ndarray) -> bytes:
    """A decoded image (H, W, 3) float32 in [0, 1] → PNG bytes."""
    rgb = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def build_router(dataplane: DataPlane, metrics: Metrics | None) -> APIRouter:
    router = APIRouter(tags=["playground"])
    template = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    keys_required = bool(load_api_keys(dataplane.settings))  # read once, as the gateway does

    @router.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(template, page_config(request.app, keys_required)),
                            headers={"cache-control": "no-cache"})

    cached: list[Any] = [float("-inf"), b""]  # (taken at, JSON body): see STATS_CACHE_S

    @router.get("/playground/api/stats")
    async def stats() -> Response:
        """The last minute per model, one entry per second: requests, errors, p50/p99
        latency (ms), batches formed and their sizes, the deepest queue."""
        if metrics is None:
            return json_response({"window_s": 0, "models": {}})
        now = time.monotonic()
        if now - cached[0] >= STATS_CACHE_S:
            cached[:] = [now, orjson.dumps(metrics.live.snapshot())]
        return Response(cached[1], media_type=JSON)

    @router.post("/playground/api/model-input/{name}")
    async def model_input(name: str, request: Request, version: str | None = None
                          ) -> Response:
        """The image as model ``name`` sees it (its codec's decode and resize), as PNG."""
        served = dataplane.model(name, parse_version(version))
        if not isinstance(served.codec, ImageCodec):
            raise InvalidInput(f"model {name} does not take images")
        items = _IMAGES.request_items(await read_payload(request))
        if len(items) != 1:
            raise InvalidInput("send one image")
        image = _IMAGES.rest_item(items[0], 0)
        pixels = await asyncio.to_thread(served.codec.decode, image)
        return Response(model_input_png(pixels), media_type="image/png")

    return router


def install(app: FastAPI, dataplane: DataPlane, metrics: Metrics | None) -> None:
    app.mount(STATIC, StaticFiles(directory=PAGE_DIR), name="playground-static")
    app.include_router(build_router(dataplane, metrics))
