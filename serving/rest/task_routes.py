"""Task endpoints for apps: /v1/{digit,text,image}:predict → labels and probabilities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.config import Settings
from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.rest.body import (
    check_json_cost,
    json_response,
    media_type,
    query_int,
    request_deadline,
)
from serving.rest.hot_asgi import Endpoint
from serving.rest.json_tensors import numeric_field
from serving.rest.payloads import image_bytes, is_b64, read_payload
from serving.versions import parse_version

PROTOCOL = "rest"


def _one_or_many(data: dict[str, Any], many: str, one: str, what: str) -> list[Any]:
    if many in data:
        items = data[many]
        if not isinstance(items, list):
            raise InvalidInput(f"'{many}' must be a list of {what}")
        return items
    if one in data:
        value = data[one]
        return value if isinstance(value, list) and one == "text" else [value]
    raise InvalidInput(f"JSON body needs '{many}' (a list of {what}) or '{one}'")


async def digit_items(request: Request) -> list[Any]:
    """Images (bytes), {"b64"} objects or numbers: unwrapped by ``digit_item`` once the
    dataplane has counted them. Numbers in JSON are read straight into numpy when they
    can be (``digit_numbers``)."""
    numbers = await digit_numbers(request)
    if numbers is not None:
        return numbers
    kind, payload = await read_payload(request)
    if kind in ("files", "raw"):
        return payload if kind == "files" else [payload]
    if kind != "json" or not isinstance(payload, dict):
        raise InvalidInput("digit body must be a JSON object, an image or a multipart upload")
    return _one_or_many(payload, "inputs", "input", "digits")


def digit_item(item: Any, index: int) -> Any:
    return image_bytes(item, f"digit {index}") if is_b64(item) else item


DIGIT_KEYS = frozenset({"input", "inputs"})


async def digit_numbers(request: Request) -> list[Any] | None:
    """{"input": numbers} or {"inputs": [numbers, ...]} (784 or 28x28 each), the numbers
    read by simdjson into one float64 array without a Python float each; None for any
    other body, which the general path reads (and refuses, when it must)."""
    if media_type(request) not in ("", "application/json"):
        return None
    body = await request.body()
    check_json_cost(body)  # the same limits as the general parse
    found = numeric_field(body, DIGIT_KEYS)
    if found is None:
        return None
    key, array = found
    if key == "input" and array.ndim in (1, 2):
        return [array]
    if key == "inputs" and array.ndim in (2, 3):
        return list(array)
    return None


async def text_items(request: Request) -> list[Any]:
    kind, payload = await read_payload(request)
    if kind == "text":
        return [payload]
    if kind != "json" or not isinstance(payload, dict):
        raise InvalidInput("text body must be JSON {\"text\": ...} or text/plain")
    return _one_or_many(payload, "texts", "text", "strings")


async def image_items(request: Request) -> list[Any]:
    """Images (bytes) or base64 strings / {"b64"} objects: unwrapped by ``image_item``
    once the dataplane has counted them."""
    kind, payload = await read_payload(request)
    if kind in ("files", "raw"):
        return payload if kind == "files" else [payload]
    if kind != "json" or not isinstance(payload, dict):
        raise InvalidInput("image body must be an image, a multipart upload or JSON base64")
    return _one_or_many(payload, "images", "image", "base64 images")


def image_item(item: Any, index: int) -> bytes:
    return item if isinstance(item, bytes) else image_bytes(item, f"image {index}")


def _example(body: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"example": body}}}}


EXAMPLES: dict[str, dict[str, Any]] = {
    "/v1/digit:predict": {"inputs": [[0.0] * 784]},
    "/v1/text:predict": {"text": ["a great film"]},
    "/v1/image:predict": {"images": [{"b64": "..."}]},
}


def endpoints(dataplane: DataPlane, settings: Settings) -> dict[str, Endpoint]:
    """The task endpoints by path; served by the fast lane and documented by FastAPI."""

    def options(request: Request) -> dict[str, Any]:
        # Most requests have no query string: skip parsing one.
        query = request.query_params if request.scope.get("query_string") else {}
        return {"model": query.get("model") or None,
                "version": parse_version(query.get("version")),
                "top_k": query_int(query, "top_k"), "protocol": PROTOCOL,
                "deadline": request_deadline(request, settings.request_timeout_s)}

    async def predict_digit(request: Request) -> Response:
        """A digit image (raw, multipart or {"b64"}), or 784 numbers / a 28x28 array."""
        items = await digit_items(request)
        result = await dataplane.predict_digit(items, unwrap=digit_item, **options(request))
        return json_response(result.to_dict())

    async def predict_text(request: Request) -> Response:
        """JSON {"text": "..." | [...]} or {"texts": [...]}, or a text/plain body."""
        items = await text_items(request)
        result = await dataplane.predict_text(items, **options(request))
        return json_response(result.to_dict())

    async def predict_image(request: Request) -> Response:
        """Multipart "file" fields, a raw image/* body, or JSON base64 images."""
        items = await image_items(request)
        result = await dataplane.predict_image(items, unwrap=image_item, **options(request))
        return json_response(result.to_dict())

    return {"/v1/digit:predict": predict_digit, "/v1/text:predict": predict_text,
            "/v1/image:predict": predict_image}


def build_router(routes: dict[str, Endpoint]) -> APIRouter:
    router = APIRouter(tags=["tasks"])
    for path, endpoint in routes.items():
        router.add_api_route(path, endpoint, methods=["POST"],
                             openapi_extra=_example(EXAMPLES[path]))
    return router
