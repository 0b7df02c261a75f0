"""A task request's body as the task plug-ins read it: JSON, multipart files, raw bytes, text."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from serving.errors import InvalidInput, UnsupportedMediaType
from serving.rest.body import media_type, parse_json
from serving.tasks.base import Payload

FILE_FIELDS = ("file", "files")


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


async def read_payload(request: Request) -> Payload:
    """The body by its content type: JSON (parsed), multipart files, raw bytes, or text."""
    kind = media_type(request)
    if kind.startswith("multipart/"):
        return Payload("files", await multipart_files(request))
    body = await request.body()
    if kind.startswith("image/") or kind == "application/octet-stream":
        if not body:
            raise InvalidInput("request body is empty; expected an image")
        return Payload("raw", body)
    if kind.startswith("text/plain"):
        try:
            return Payload("text", body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"text body is not valid UTF-8 (byte {exc.start})",
                               detail=str(exc)) from exc
    if kind in ("", "application/json") or kind.endswith("+json"):
        return Payload("json", parse_json(body))
    if kind == "application/x-www-form-urlencoded" and body[:1] in (b"{", b"["):
        # curl's default for -d: TF Serving reads such bodies as JSON, users expect the same.
        return Payload("json", parse_json(body))
    raise UnsupportedMediaType(f"unsupported content type {kind!r}")
