"""The bare HTTP limit: a web server, orjson and one ONNX Runtime call per request.

What the digit task endpoint would cost with nothing of ours around it: no framework,
no routing beyond one comparison, no batching, no validation beyond what numpy does.
The benchmark reads each served REST path as a fraction of this limit.

- ``--server uvicorn`` (the default): a raw ASGI app under uvicorn with httptools and
  uvloop, uvicorn's fastest settings (the "bare ASGI limit");
- ``--server granian``: the same work behind granian's native RSGI interface (Rust HTTP,
  one Python call per request), in granian's embedded server on a uvloop loop, the way
  the serving process would have to run it beside grpc.aio.

``POST /v1/digit:predict`` takes ``{"input": [784 numbers]}`` and answers as the task
endpoint does; ``GET /empty`` answers ``{}`` (the bare round trip); ``GET /ready``.

    python -m loadtest.bare_http --model models/digit/1/model.onnx --port 8002
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loadtest.bare_model import OrtModel

PREDICT = "/v1/digit:predict"
JSON_HEADERS = [(b"content-type", b"application/json")]


def answer(model: OrtModel, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for one request: the whole of the bare app's work."""
    if method == "GET":
        return (200, b"{}") if path in ("/empty", "/ready") else (404, b'{"error":"not found"}')
    if path != PREDICT:
        return 404, b'{"error":"not found"}'
    try:
        pixels = np.asarray(orjson.loads(body)["input"], dtype=np.float32).reshape(1, 784)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return 400, orjson.dumps({"error": f"input must be 784 numbers: {exc}"})
    return 200, orjson.dumps(model.digit_answer(pixels))


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BareAsgi:
    def __init__(self, model: OrtModel) -> None:
        self.model = model

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]  # startup, then shutdown
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = answer(self.model, scope["method"], scope["path"], b"".join(chunks))
        await send({"type": "http.response.start", "status": status,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BareRsgi:
    def __init__(self, model: OrtModel) -> None:
        self.model = model

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        body = await protocol() if scope.method == "POST" else b""
        status, out = answer(self.model, scope.method, scope.path, body)
        protocol.response_bytes(status, [("content-type", "application/json")], out)


async def serve_granian(model: OrtModel, port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(BareRsgi(model), address="127.0.0.1", port=port, interface=Interfaces.RSGI,
                    runtime_threads=1, log_enabled=False, websockets=False)
    await server.serve()


def serve_uvicorn(model: OrtModel, port: int) -> None:
    import uvicorn

    uvicorn.run(BareAsgi(model), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                lifespan="on", access_log=False, log_level="warning", workers=1,
                server_header=False, date_header=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args(argv)
    model = OrtModel(args.model, threads=args.threads)
    if args.server == "uvicorn":
        serve_uvicorn(model, args.port)
        return 0
    import uvloop

    uvloop.run(serve_granian(model, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
