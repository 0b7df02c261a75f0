"""Request body and query helpers shared by the REST routers (no pydantic on tensors)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from serving.errors import InvalidInput

JSON = "application/json"


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """orjson with numpy support: arrays are written straight from their buffers."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc


def parse_json_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(data).__name__}")
    return data


def query_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput(f"query parameter {name} must be an integer, got {value!r}") from exc


def request_deadline(request: Request, default_s: float) -> float:
    """Counted from the request's arrival; a client may shorten the server's timeout with
    ``Request-Timeout`` (seconds)."""
    value = request.headers.get("request-timeout")
    timeout = default_s
    if value:
        try:
            timeout = min(default_s, float(value))
        except ValueError as exc:
            raise InvalidInput(f"Request-Timeout must be seconds, got {value!r}") from exc
    arrived = request.scope.get("state", {}).get("arrived")  # serving/rest/lifetime.py
    return (time.monotonic() if arrived is None else arrived) + timeout


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
