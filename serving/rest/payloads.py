"""Payload decoding shared by the routers: base64 values, multipart files, raw bodies."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from serving.errors import InvalidInput, UnsupportedMediaType
from serving.rest.body import media_type, parse_json

FILE_FIELDS = ("file", "files")


def b64decode(value: Any, what: str = "value") -> bytes:
    """Standard or URL-safe base64 (TF Serving clients send either)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64", detail=str(exc)) from exc


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def image_bytes(item: Any, what: str) -> bytes:
    """``"<base64>"`` or ``{"b64": "<base64>"}`` → bytes."""
    if is_b64(item):
        item = item["b64"]
    return b64decode(item, what)


async def multipart_files(request: Request) -> list[bytes]:
    try:
        form = await request.form()
    except MultiPartException as exc:  # no boundary, bad framing: the client's mistake
        raise InvalidInput(f"malformed multipart body: {exc.message}") from exc
    try:
        files = [f for name in FILE_FIELDS for f in form.getlist(name)
                 if isinstance(f, UploadFile)]
        if not files:
            raise InvalidInput("multipart body has no file field named 'file'")
        return [await f.read() for f in files]
    finally:
        await form.close()


async def read_payload(request: Request) -> tuple[str, Any]:
    """Classify the body: ("json", obj) | ("files", [bytes]) | ("raw", bytes) | ("text", str)."""
    kind = media_type(request)
    if kind.startswith("multipart/"):
        return "files", await multipart_files(request)
    body = await request.body()
    if kind.startswith("image/") or kind == "application/octet-stream":
        if not body:
            raise InvalidInput("request body is empty; expected an image")
        return "raw", body
    if kind.startswith("text/plain"):
        try:
            return "text", body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"text body is not valid UTF-8 (byte {exc.start})",
                               detail=str(exc)) from exc
    if kind in ("", "application/json") or kind.endswith("+json"):
        return "json", parse_json(body)
    if kind == "application/x-www-form-urlencoded" and body[:1] in (b"{", b"["):
        # curl's default for -d: TF Serving reads such bodies as JSON, users expect the same.
        return "json", parse_json(body)
    raise UnsupportedMediaType(f"unsupported content type {kind!r}")
