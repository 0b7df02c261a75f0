"""The hot routes (task endpoints, TF Serving and v2 predict) answer alike on every lane:
the same request gets the same status, headers and body bytes from

- the HTTP protocol of a real server (serving/rest/hot_protocol.py, production's path),
- the in-process ASGI lane (serving/rest/hot_asgi.py behind the app's middleware),
- the ASGI lane of a real server (a CORS request: uvicorn hands it to the app).

The requests cover every input form and error shape of tests/integration/rest/
test_tasks.py and test_errors.py, the tensor routes' forms (versions, labels, row and
columnar, ints and floats, b64, BYTES), and the settings that change an answer (API keys,
body and image size limits). The tensor routes also answer exactly as FastAPI's own
routes for them did before the hot lanes took them. A difference names the request and
the lanes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.integration.rest.images import digit_png, digit_values, solid_rgb
from tests.integration.rest.test_errors import BAD_REQUESTS

ORIGIN = "http://parity.example"
# Framing, not content: each transport frames a response its own way.
TRANSPORT_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "date",
                               "server"})
CORS_HEADERS = frozenset({"access-control-allow-origin", "access-control-allow-credentials",
                          "access-control-expose-headers", "vary"})
JSON = {"content-type": "application/json"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _good_requests() -> list[tuple[str, str, dict[str, Any]]]:
    png, red, blue = digit_png(5), solid_rgb(250, 0, 0), solid_rgb(0, 0, 250)
    cases = [
        ("digit inputs", "/v1/digit:predict", {"json": {"inputs": [digit_values(2)]}}),
        ("digit 28x28 top_k", "/v1/digit:predict?top_k=3",
         {"json": {"input": [[255.0 * v for v in digit_values(4)[r * 28:(r + 1) * 28]]
                             for r in range(28)]}}),
        ("digit b64", "/v1/digit:predict", {"json": {"inputs": [{"b64": _b64(png)}]}}),
        ("digit multipart", "/v1/digit:predict",
         {"files": [("file", ("d.png", png, "image/png")),
                    ("file", ("e.png", digit_png(1), "image/png"))]}),
        ("digit raw png", "/v1/digit:predict",
         {"content": png, "headers": {"content-type": "image/png"}}),
        ("digit model+version", "/v1/digit:predict?model=digit&version=1",
         {"json": {"input": [0.0] * 784}}),
        ("digit missing version", "/v1/digit:predict?version=9",
         {"json": {"input": [0.0] * 784}}),
        ("digit wrong task", "/v1/digit:predict?model=text", {"json": {"input": [0.0] * 784}}),
        ("digit bad version", "/v1/digit:predict?version=x", {"json": {"input": [0.0] * 784}}),
        ("text one", "/v1/text:predict", {"json": {"text": "a good fun movie"}}),
        ("text many", "/v1/text:predict", {"json": {"texts": ["good", "awful bad plot"]}}),
        ("text plain", "/v1/text:predict",
         {"content": b"great fun", "headers": {"content-type": "text/plain; charset=utf-8"}}),
        ("text curl -d", "/v1/text:predict",
         {"content": b'{"text": "a great film"}',
          "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("text real form", "/v1/text:predict",
         {"content": b"text=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("image json b64", "/v1/image:predict",
         {"json": {"images": [_b64(blue), {"b64": _b64(red)}]}}),
        ("image multipart", "/v1/image:predict",
         {"files": [("file", ("r", red, "image/x")), ("file", ("b", blue, "x"))]}),
    ]
    for fmt in ("PNG", "JPEG", "WEBP", "BMP"):
        cases.append((f"image raw {fmt}", "/v1/image:predict",
                      {"content": solid_rgb(250, 0, 0, fmt=fmt),
                       "headers": {"content-type": f"image/{fmt.lower()}"}}))
    return cases + _tensor_requests()


def _tensor_requests() -> list[tuple[str, str, dict[str, Any]]]:
    floats, ints = [round(0.001 * i, 4) for i in range(784)], [i % 256 for i in range(784)]
    png = _b64(digit_png(3))

    def v2(data: list, datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
        return {"json": {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": datatype,
                                     "data": data}], **extra}}
    return [
        ("tfs instances floats", "/v1/models/digit:predict", {"json": {"instances": [floats]}}),
        ("tfs instances ints", "/v1/models/digit:predict", {"json": {"instances": [ints]}}),
        ("tfs inputs columnar", "/v1/models/digit:predict",
         {"json": {"inputs": {"pixels": [floats, ints]}}}),
        ("tfs version", "/v1/models/digit/versions/1:predict", {"json": {"instances": [ints]}}),
        ("tfs label latest", "/v1/models/digit/labels/latest:predict",
         {"json": {"instances": [floats]}}),
        ("tfs label other", "/v1/models/digit/labels/stable:predict",
         {"json": {"instances": [floats]}}),
        ("tfs bad version", "/v1/models/digit/versions/x:predict",
         {"json": {"instances": [floats]}}),
        ("tfs signature", "/v1/models/digit:predict",
         {"json": {"signature_name": "serving_default", "instances": [floats]}}),
        ("tfs wrong signature", "/v1/models/digit:predict",
         {"json": {"signature_name": "other", "instances": [floats]}}),
        ("tfs b64 image", "/v1/models/digit:predict", {"json": {"instances": [{"b64": png}]}}),
        ("tfs text strings", "/v1/models/text:predict", {"json": {"instances": ["good fun"]}}),
        ("tfs ragged", "/v1/models/digit:predict", {"json": {"instances": [[1, 2], [3]]}}),
        ("tfs unknown model", "/v1/models/nope:predict", {"json": {"instances": [[1]]}}),
        ("v2 floats", "/v2/models/digit/infer", v2(floats, id="r1")),
        ("v2 ints", "/v2/models/digit/infer", v2(ints)),
        ("v2 version", "/v2/models/digit/versions/1/infer", v2(floats)),
        ("v2 bad version", "/v2/models/digit/versions/0/infer", v2(floats)),
        ("v2 outputs", "/v2/models/digit/infer",
         v2(floats, outputs=[{"name": "probabilities"}])),
        ("v2 binary output", "/v2/models/digit/infer",
         v2(floats, outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}])),
        ("v2 nested data", "/v2/models/digit/infer", v2([floats])),
        ("v2 fractional ints", "/v2/models/digit/infer", v2([0.5] * 784, "INT32")),
        ("v2 wrong count", "/v2/models/digit/infer", v2(floats[:10])),
        ("v2 text bytes", "/v2/models/text/infer",
         {"json": {"inputs": [{"name": "tokens", "shape": [1], "datatype": "BYTES",
                               "data": ["a good film"]}]}}),
        ("v2 duplicate key", "/v2/models/digit/infer",
         {"content": b'{"inputs": [], "inputs": []}', "headers": JSON}),
    ]


def _with_settings() -> list[tuple[str, dict[str, Any], list[tuple[str, str, dict[str, Any]]]]]:
    digit = {"json": {"input": [0.0] * 784}}
    return [
        ("api keys", {"api_keys": ["k1"]}, [
            ("no key", "/v1/digit:predict", digit),
            ("wrong key", "/v1/digit:predict",
             digit | {"headers": {"Authorization": "Bearer x"}}),
            ("bearer key", "/v1/digit:predict",
             digit | {"headers": {"Authorization": "Bearer k1"}}),
            ("x-api-key", "/v1/text:predict",
             {"json": {"text": "good"}, "headers": {"X-API-Key": "k1"}}),
        ]),
        ("body limit", {"max_request_bytes": 4096}, [
            ("declared too large", "/v1/digit:predict",
             {"json": {"inputs": [[0.123456] * 784]}}),
            ("streamed too large", "/v1/digit:predict",
             {"chunks": [b" " * 1000] * 10, "headers": JSON}),
            ("small enough", "/v1/digit:predict", {"json": {"input": [0] * 784}}),
        ]),
        ("pixel limit", {"max_image_pixels": 1000}, [
            ("image too large", "/v1/image:predict",
             {"content": solid_rgb(1, 1, 1, size=64), "headers": {"content-type": "image/png"}}),
        ]),
    ]


GROUPS = [("defaults", {}, _good_requests() + [case[:3] for case in BAD_REQUESTS]),
          *_with_settings()]


def _request(kwargs: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
    """Fresh keyword arguments for one send (a streamed body can be sent only once)."""
    out = dict(kwargs)
    if "chunks" in out:
        chunks = out.pop("chunks")

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
        out["content"] = stream()
    if origin is not None:
        out["headers"] = dict(out.get("headers", {})) | {"Origin": origin}
    return out


def _answer(resp: httpx.Response, ignore: frozenset[str] = frozenset()
            ) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body; the request id (unique per request, also at the end of a
    server error's message) compared by presence, not value; Server-Timing by its stages."""
    skip = TRANSPORT_HEADERS | ignore
    headers = {k: v for k, v in resp.headers.items() if k not in skip}
    body = resp.content
    request_id = headers.get("x-request-id")
    if request_id:
        headers["x-request-id"] = "<present>"
        body = body.replace(request_id.encode(), b"<request-id>")
    timing = headers.get("server-timing")
    if timing:  # the stages compared, not their durations (nor the batch a request met)
        headers["server-timing"] = ", ".join(part.split(";")[0] for part in timing.split(", "))
    return resp.status_code, headers, body


@pytest.mark.parametrize(("group", "settings", "cases"), GROUPS, ids=[g[0] for g in GROUPS])
async def test_the_lanes_answer_alike(make_rest_client: Callable[..., Any],
                                      protocol_servers: Callable[..., str], group: str,
                                      settings: dict[str, Any], cases: list) -> None:
    in_process = (await make_rest_client(**settings)).client
    differences = []
    async with httpx.AsyncClient(base_url=protocol_servers(**settings), timeout=30) as real, \
            httpx.AsyncClient(base_url=protocol_servers(cors_origins=[ORIGIN], **settings),
                              timeout=30) as cors:
        for name, path, kwargs in cases:
            protocol = await real.post(path, **_request(kwargs))
            asgi = await in_process.post(path, **_request(kwargs))
            asgi_on_server = await cors.post(path, **_request(kwargs, ORIGIN))
            if _answer(protocol) != _answer(asgi):
                differences.append((name, "protocol", _answer(protocol), "asgi", _answer(asgi)))
            if _answer(protocol) != _answer(asgi_on_server, CORS_HEADERS):
                differences.append((name, "protocol", _answer(protocol), "asgi on the server",
                                    _answer(asgi_on_server, CORS_HEADERS)))
            assert asgi_on_server.headers.get("access-control-allow-origin") == ORIGIN, name
    assert not differences, "\n".join(
        f"{name}: {a} answered {got_a!r:.300}\n  but {b} answered {got_b!r:.300}"
        for name, a, got_a, b, got_b in differences)


async def test_the_tensor_routes_answer_as_fastapis_routes_did(
        make_rest_client: Callable[..., Any]) -> None:
    """FastAPI still declares the tensor routes (docs, OpenAPI): calling its router past
    ServingApp's hot lane must give the same answers."""
    from fastapi import FastAPI

    rest = await make_rest_client()
    app = rest.client._transport.app  # type: ignore[attr-defined]

    async def fastapi_only(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fastapi_only),
                                 base_url="http://modelserve.test") as routed:
        differences = []
        for name, path, kwargs in _tensor_requests():
            hot, via_router = await rest.client.post(path, **_request(kwargs)), \
                await routed.post(path, **_request(kwargs))
            if _answer(hot) != _answer(via_router):
                differences.append(f"{name}: hot {_answer(hot)!r:.300}\n  FastAPI "
                                   f"{_answer(via_router)!r:.300}")
    assert not differences, "\n".join(differences)


async def test_granian_answers_the_hot_routes_as_uvicorn_does(
        protocol_server_for: Callable[..., Any]) -> None:
    """MODELSERVE_HTTP_SERVER=granian (opt-in): granian hands every request to the app's
    ASGI lane; the task and tensor routes, their errors included, answer as under uvicorn's
    protocol lane, byte for byte."""
    from serving.rest.granian_server import GranianServer

    on_granian = protocol_server_for(http_server="granian")
    assert isinstance(on_granian.process.http, GranianServer)
    differences = []
    async with httpx.AsyncClient(base_url=protocol_server_for().url, timeout=30) as uvicorn, \
            httpx.AsyncClient(base_url=on_granian.url, timeout=30) as granian:
        for name, path, kwargs in GROUPS[0][2]:
            expected = _answer(await uvicorn.post(path, **_request(kwargs)))
            got = _answer(await granian.post(path, **_request(kwargs)))
            if got != expected:
                differences.append(f"{name}: uvicorn {expected!r:.300}\n  granian {got!r:.300}")
    assert not differences, "\n".join(differences)
