"""A corpus of hostile payloads over REST and gRPC against one real server: truncated,
oversized and decompression-bomb images, deeply nested JSON, huge numbers, NaN, wrong
content types, invalid UTF-8, 10 MB of text, lying lengths and shapes. Every answer
must be a 4xx (gRPC: a client-error code; two payloads are valid and answer 200),
never a 5xx/INTERNAL, and the server must still answer correctly afterwards."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import numpy as np
from PIL import Image

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.integration.rest.images import solid_rgb

PNG = solid_rgb(200, 10, 10, size=64)
JPEG = solid_rgb(10, 10, 200, size=64, fmt="JPEG")
GRPC_CLIENT_ERRORS = {"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED",
                      "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNIMPLEMENTED"}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros: tiny on the wire, width*height bytes decoded."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def png_header_only(width: int, height: int) -> bytes:
    """Claims a huge size, carries no pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def animated_gif(frames: int = 50) -> bytes:
    images = [Image.new("RGB", (64, 64), (i * 5 % 255, 0, 0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:])
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rest_corpus() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, method, path, httpx request kwargs)."""
    bomb = png_bomb(8000, 8000)  # 64 M pixels > the 40 M limit; ~60 KB on the wire
    nested = b"[" * 100_000 + b"]" * 100_000
    img_png = {"content-type": "image/png"}
    digit_v2 = {"name": "pixels", "datatype": "FP32", "shape": [1, 784]}
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("truncated png raw", "POST", "/v1/image:predict",
         {"content": PNG[: len(PNG) // 2], "headers": img_png}),
        ("truncated jpeg multipart", "POST", "/v1/image:predict",
         {"files": [("file", ("x.jpg", JPEG[:200], "image/jpeg"))]}),
        ("png bomb raw", "POST", "/v1/image:predict", {"content": bomb, "headers": img_png}),
        ("png bomb b64", "POST", "/v1/image:predict", {"json": {"image": b64(bomb)}}),
        ("png bomb digit", "POST", "/v1/digit:predict", {"json": {"input": {"b64": b64(bomb)}}}),
        ("huge png header", "POST", "/v1/image:predict",
         {"content": png_header_only(1 << 30, 1 << 30), "headers": img_png}),
        ("zero-size png", "POST", "/v1/image:predict",
         {"content": png_header_only(0, 0), "headers": img_png}),
        ("animated gif", "POST", "/v1/image:predict",
         {"content": animated_gif(), "headers": {"content-type": "image/gif"}}),
        ("not an image", "POST", "/v1/image:predict",
         {"content": b"GIF89a" + b"\0" * 100, "headers": {"content-type": "image/gif"}}),
        ("bad base64", "POST", "/v1/image:predict", {"json": {"image": "!!!not base64"}}),
        ("deeply nested json task", "POST", "/v1/digit:predict",
         {"content": nested, "headers": {"content-type": "application/json"}}),
        ("deeply nested json v2", "POST", "/v2/models/digit/infer",
         {"content": nested, "headers": {"content-type": "application/json"}}),
        ("deeply nested json tfs", "POST", "/v1/models/digit:predict",
         {"content": b'{"instances": ' + nested + b"}",
          "headers": {"content-type": "application/json"}}),
        ("nested digit lists", "POST", "/v1/digit:predict",
         {"json": {"input": [[[[0.0] * 28] * 28]] * 3}}),
        ("huge float", "POST", "/v1/digit:predict",
         {"content": b'{"input": [' + b",".join([b"1e400"] * 784) + b"]}",
          "headers": {"content-type": "application/json"}}),
        ("huge int", "POST", "/v1/digit:predict",
         {"content": b'{"input": [' + b",".join([b"9" * 400] * 784) + b"]}",
          "headers": {"content-type": "application/json"}}),
        ("float32 overflow v2", "POST", "/v2/models/digit/infer",
         {"json": {"inputs": [digit_v2 | {"data": [1e39] * 784}]}}),
        ("NaN literal", "POST", "/v1/digit:predict",
         {"content": b'{"input": [' + b",".join([b"NaN"] * 784) + b"]}",
          "headers": {"content-type": "application/json"}}),
        ("NaN tfs", "POST", "/v1/models/digit:predict",
         {"content": b'{"instances": [[' + b",".join([b"NaN"] * 784) + b"]]}",
          "headers": {"content-type": "application/json"}}),
        ("strings as pixels", "POST", "/v1/digit:predict", {"json": {"input": ["a"] * 784}}),
        ("huge shape v2", "POST", "/v2/models/digit/infer",
         {"json": {"inputs": [digit_v2 | {"shape": [2**40, 2**40], "data": [0.0]}]}}),
        ("negative shape v2", "POST", "/v2/models/digit/infer",
         {"json": {"inputs": [digit_v2 | {"shape": [-1, 784], "data": [0.0] * 784}]}}),
        ("binary length lies", "POST", "/v2/models/digit/infer",
         {"content": b'{"inputs": []}xx', "headers": {
             "content-type": "application/octet-stream",
             "inference-header-content-length": "999999"}}),
        ("binary length negative", "POST", "/v2/models/digit/infer",
         {"content": b'{"inputs": []}', "headers": {
             "content-type": "application/octet-stream",
             "inference-header-content-length": "-5"}}),
        ("xml body", "POST", "/v1/text:predict",
         {"content": b"<text>hi</text>", "headers": {"content-type": "application/xml"}}),
        ("multipart without boundary", "POST", "/v1/image:predict",
         {"content": b"--x\r\n\r\n", "headers": {"content-type": "multipart/form-data"}}),
        ("json labelled as png", "POST", "/v1/image:predict",
         {"content": b'{"image": "x"}', "headers": img_png}),
        ("invalid utf-8 text/plain", "POST", "/v1/text:predict",
         {"content": b"\xff\xfe\xfa\xc3\x28", "headers": {"content-type": "text/plain"}}),
        ("invalid utf-8 json", "POST", "/v1/text:predict",
         {"content": b'{"text": "\xff\xfe"}', "headers": {"content-type": "application/json"}}),
        ("10 MB text", "POST", "/v1/text:predict", {"json": {"text": "good " * 2_000_000}}),
        ("20 MB body", "POST", "/v1/text:predict",
         {"content": b"a" * (20 << 20), "headers": {"content-type": "text/plain"}}),
        ("text as list of objects", "POST", "/v1/text:predict", {"json": {"text": [{"a": 1}]}}),
        ("100k tiny texts", "POST", "/v1/text:predict", {"json": {"texts": ["good"] * 100_000}}),
        ("top_k negative", "POST", "/v1/digit:predict?top_k=-3", {"json": {"input": [0] * 784}}),
        ("version overflow", "POST", "/v1/digit:predict?version=" + "9" * 40,
         {"json": {"input": [0] * 784}}),
        ("unknown model", "POST", "/v2/models/%00%ff/infer", {"json": {"inputs": []}}),
        ("request-timeout garbage", "POST", "/v1/digit:predict",
         {"json": {"input": [0] * 784}, "headers": {"request-timeout": "soon"}}),
        ("request-timeout nan", "POST", "/v1/digit:predict",
         {"json": {"input": [0] * 784}, "headers": {"request-timeout": "nan"}}),
        ("repository load garbage", "POST", "/v2/repository/models/digit/load",
         {"content": b"\xff\x00", "headers": {"content-type": "application/json"}}),
    ]
    return cases


async def test_hostile_rest_payloads_answer_4xx(make_server, report) -> None:
    server = await make_server()
    outcomes: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for label, method, path, kwargs in rest_corpus():
            try:
                resp = await client.request(method, path, **kwargs)
                outcomes[label] = resp.status_code
            except httpx.HTTPError as exc:
                outcomes[label] = -1
                print(f"{label}: {type(exc).__name__} {exc}")
        after = await client.post("/v1/image:predict", content=PNG,
                                  headers={"content-type": "image/png"})
    by_code = Counter(outcomes.values())
    report("tried", payloads=len(outcomes), kinds=sorted(outcomes))
    report("happened", by_status=dict(sorted(by_code.items())), after=after.status_code,
           not_4xx={k: v for k, v in outcomes.items() if not 400 <= v < 500})
    # Valid after all: a GIF's first frame is an image; a NaN timeout leaves the server's.
    answered = {k for k, v in outcomes.items() if 200 <= v < 300}
    assert answered <= {"animated gif", "request-timeout nan"}, outcomes
    assert all(200 <= code < 500 for code in outcomes.values()), outcomes
    assert after.status_code == 200 and after.json()["predictions"][0]["label"] == "sneaker"


def _infer(name: str = "digit", datatype: str = "FP32", shape: tuple[int, ...] = (1, 784),
           raw: bytes | None = None, **extra: Any) -> pb.ModelInferRequest:
    raw = np.zeros((1, 784), np.float32).tobytes() if raw is None else raw
    return pb.ModelInferRequest(model_name=name, raw_input_contents=[raw], inputs=[
        pb.ModelInferRequest.InferInputTensor(name=extra.pop("input", "pixels"),
                                              datatype=datatype, shape=list(shape))], **extra)


def grpc_corpus() -> list[tuple[str, Callable[[pb_grpc.GRPCInferenceServiceStub], Any]]]:
    nan = np.full((1, 784), np.nan, np.float32).tobytes()
    bomb = png_bomb(8000, 8000)
    cases: list[tuple[str, pb.ModelInferRequest]] = [
        ("short raw contents", _infer(raw=b"\0" * 100)),
        ("long raw contents", _infer(raw=b"\0" * 10_000)),
        ("NaN pixels", _infer(raw=nan)),
        ("wrong datatype", _infer(datatype="INT64")),
        ("unknown datatype", _infer(datatype="COMPLEX128")),
        ("huge shape", _infer(shape=(2**40, 2**40))),
        ("negative shape", _infer(shape=(-1, 784))),
        ("wrong input name", _infer(input="nope")),
        ("bad version", _infer(model_version="-1")),
        ("superscript version", _infer(model_version="²")),
        ("unknown model", _infer(name="\x00\uffff")),
        ("image bytes bomb", _infer(name="image", datatype="BYTES", shape=(1,),
                                    raw=struct.pack("<I", len(bomb)) + bomb, input="image")),
        ("image bytes truncated", _infer(name="image", datatype="BYTES", shape=(1,),
                                         raw=struct.pack("<I", 999) + PNG[:50], input="image")),
        ("text bytes invalid utf-8", _infer(name="text", datatype="BYTES", shape=(1,),
                                            raw=struct.pack("<I", 3) + b"\xff\xfe\xfa",
                                            input="tokens")),
        ("no inputs", pb.ModelInferRequest(model_name="digit")),
        ("5 MB message", _infer(raw=b"\0" * (5 << 20))),
    ]
    calls = [(label, lambda stub, r=request: stub.ModelInfer(r, timeout=30))
             for label, request in cases]
    calls.append(("load unknown model", lambda stub: stub.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(model_name="../../etc"), timeout=30)))
    calls.append(("metadata weird name", lambda stub: stub.ModelMetadata(
        pb.ModelMetadataRequest(name="%s" * 1000), timeout=30)))
    return calls


async def test_hostile_grpc_payloads_answer_client_errors(make_server, report) -> None:
    server = await make_server(grpc_max_message_bytes=4 << 20)
    outcomes: dict[str, str] = {}
    async with grpc.aio.insecure_channel(server.grpc_target, options=[
            ("grpc.max_send_message_length", -1)]) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for label, call in grpc_corpus():
            try:
                await call(stub)
                outcomes[label] = "OK"
            except grpc.aio.AioRpcError as exc:
                outcomes[label] = exc.code().name
        ok = await stub.ModelInfer(_infer(), timeout=10)
    report("tried", payloads=len(outcomes), kinds=sorted(outcomes))
    report("happened", by_code=dict(Counter(outcomes.values())),
           not_client_error={k: v for k, v in outcomes.items() if v not in GRPC_CLIENT_ERRORS},
           after=ok.model_name)
    assert set(outcomes.values()) <= GRPC_CLIENT_ERRORS, outcomes
    assert ok.model_name == "digit"
