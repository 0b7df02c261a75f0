"""Request body and query helpers shared by the REST routers (no pydantic on tensors)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from serving.errors import InvalidInput, PayloadTooLarge

JSON = "application/json"
# Parsed JSON costs far more memory than its text: an empty list ("[],": 3 bytes) is a
# 72-byte object, an empty string a 50-byte one, a number ("0.5,": 4 bytes) 32 bytes with
# its list slot (65 at the peak, measured); 16 MiB of "[]," took 530 MB and 3 s of the
# event loop to parse, 2.4 M numbers 170 MB and a second. So bodies are counted first
# (bytes.count runs at memory speed) and refused past these. Real bodies hold dozens of
# strings and, as nested tensors, under a million arrays (32 images of 150x150x3: 725 k).
# Large numeric tensors (TF Serving's, v2's ``data``) are read by simdjson into numpy
# (json_tensors.py): 16 bytes a number while parsing, up to MAX_JSON_VALUES of them;
# what becomes Python objects (orjson) may hold MAX_PLAIN_JSON_VALUES (about 17 MB and
# 50 ms of the loop). A body too short to pass a limit (an array, string or value
# takes 2 bytes) is not counted.
MAX_JSON_CONTAINERS = 1 << 20
MAX_JSON_STRINGS = 1 << 16
MAX_JSON_VALUES = 2_500_000
MAX_PLAIN_JSON_VALUES = 1 << 18


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """orjson with numpy support: arrays are written straight from their buffers."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def check_json_cost(body: bytes, max_values: int = MAX_PLAIN_JSON_VALUES) -> None:
    """Refuse (413) a JSON body whose parse would cost memory out of proportion to it;
    ``max_values``: MAX_JSON_VALUES before simdjson, the plain limit before orjson."""
    if len(body) > 2 * MAX_JSON_STRINGS and body.count(b'"') // 2 > MAX_JSON_STRINGS:
        raise PayloadTooLarge(f"JSON body holds more than {MAX_JSON_STRINGS} strings")
    if len(body) > 2 * MAX_JSON_CONTAINERS and \
            body.count(b"[") + body.count(b"{") > MAX_JSON_CONTAINERS:
        raise PayloadTooLarge(f"JSON body holds more than {MAX_JSON_CONTAINERS} arrays and "
                              f"objects; send large tensors flat, or in binary")
    if len(body) > 2 * max_values and body.count(b",") >= max_values:
        raise PayloadTooLarge(f"JSON body holds more than {max_values} values; send large "
                              f"tensors as numbers in a tensor's data, or in binary")


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("request body is empty; expected JSON")
    check_json_cost(body)
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
