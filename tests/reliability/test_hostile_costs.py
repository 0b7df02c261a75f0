"""Issue 12, findings 1-5: no small request may cost memory or event-loop time out of
proportion to its size, and malformed ones are 4xx, never 500.

Against a real server (uvicorn and grpc.aio on 127.0.0.1) in this process, so the
memory a request makes the server allocate is measured with tracemalloc (numpy arrays,
bytes and strings are traced; Pillow's pixels are not, which is why images are
checked by what they declare instead).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.grpc.generated.tensorflow.core.framework import tensor_pb2, types_pb2
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tests.integration.rest.images import solid_rgb
from tests.reliability.probes import HealthProbe, percentile
from tests.reliability.test_hostile_payloads import png_bomb

MB = 1 << 20
CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
LONG_VERSION = "7" * 5000  # int() refuses more than 4300 digits


@contextlib.contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """The most memory Python and numpy allocated inside the block (bytes)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    peak = 0
    try:
        yield lambda: peak
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()


def fill(name: str, shape: list[int], value: float = 0.5) -> predict_pb2.PredictRequest:
    """TensorFlow's one-value form: ``float_val`` of one value fills the declared shape."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digit"
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    for d in shape:
        proto.tensor_shape.dim.add(size=d)
    request.inputs[name].CopyFrom(proto)
    return request


def strings(model: str, name: str, values: list[bytes]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=values)
    proto.tensor_shape.dim.add(size=len(values))
    request.inputs[name].CopyFrom(proto)
    return request


def v2_bytes(model: str, name: str, values: list[bytes], *, raw: bool
             ) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=name, datatype="BYTES", shape=[len(values)])
    if raw:
        request.raw_input_contents.append(b"".join(struct.pack("<I", len(v)) + v
                                                   for v in values))
    else:
        tensor.contents.bytes_contents.extend(values)
    return request


def v2_binary_body(name: str, values: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """Triton's binary extension: a JSON header then length-prefixed BYTES elements."""
    raw = b"".join(struct.pack("<I", len(v)) + v for v in values)
    header = (b'{"inputs": [{"name": "%s", "datatype": "BYTES", "shape": [%d], '
              b'"parameters": {"binary_data_size": %d}}]}' % (name.encode(), len(values),
                                                               len(raw)))
    return header + raw, {"inference-header-content-length": str(len(header)),
                          "content-type": "application/octet-stream"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Finding 1 --------------------------------------------------------------------------
async def test_tf_grpc_one_value_fill_is_refused_for_what_it_declares(make_server) -> None:
    server = await make_server()
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        cases = {"beyond the batch limit": fill("pixels", [4096, 784]),       # 12.8 MB
                 "an unknown input": fill("bogus", [1024, 1024, 16]),         # 64 MB
                 "int64-sized": fill("pixels", [1 << 40, 1 << 40]),
                 "a wrong item shape": fill("pixels", [1, 784 * 20_000])}     # 63 MB
        for label, request in cases.items():
            with traced() as peak, pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Predict(request, timeout=30)
            assert err.value.code() in CLIENT_CODES, (label, err.value)
            assert peak() < MB, (label, peak())
        # TensorFlow's rule still holds within the model's spec.
        ok = await stub.Predict(fill("pixels", [2, 784]), timeout=30)
        assert len(ok.outputs["probabilities"].tensor_content) == 2 * 10 * 4


# Finding 2 --------------------------------------------------------------------------
@pytest.mark.parametrize("element", [50_000_000, -1, 1.5, None, {"a": 1}, True, [[[]]]])
async def test_v2_json_bytes_elements_must_be_strings(make_server, element: Any) -> None:
    server = await make_server()
    body = {"inputs": [{"name": "tokens", "datatype": "BYTES", "shape": [1],
                        "data": [element]}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        with traced() as peak:
            resp = await client.post("/v2/models/text/infer", json=body)
    assert resp.status_code == 400, resp.text
    assert "'tokens'" in resp.json()["error"]
    assert peak() < 2 * MB, peak()  # bytes(50_000_000) would be 50 MB, its text 50 more


# Finding 3 --------------------------------------------------------------------------
CORRUPT = solid_rgb(10, 10, 200)[:60]
GOOD = solid_rgb(200, 10, 10)
OVER_CAP = [CORRUPT] + [GOOD] * 32  # 33 items for a batch limit of 32; the first is corrupt


async def _rest_door(url: str, path: str, **kwargs: Any) -> tuple[int, str]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        resp = await client.post(path, **kwargs)
    return resp.status_code, resp.json()["error"]


async def _grpc_door(target: str, call: Callable[[grpc.aio.Channel], Any]) -> tuple[int, str]:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await call(channel)
        except grpc.aio.AioRpcError as exc:
            return exc.code().value[0], exc.details() or ""
    return 0, "answered"


def _over_cap_doors() -> dict[str, Callable[[Any], Any]]:
    binary, headers = v2_binary_body("image", OVER_CAP)
    return {
        "task image (JSON base64)": lambda s: _rest_door(
            s.url, "/v1/image:predict", json={"images": [b64(i) for i in OVER_CAP]}),
        "task digit (JSON b64)": lambda s: _rest_door(
            s.url, "/v1/digit:predict", json={"inputs": [{"b64": b64(CORRUPT)}]
                                              + [[0.0] * 784] * 32}),
        "TF Serving REST b64": lambda s: _rest_door(
            s.url, "/v1/models/image:predict",
            json={"instances": [{"b64": b64(i)} for i in OVER_CAP]}),
        "v2 REST binary BYTES": lambda s: _rest_door(
            s.url, "/v2/models/image/infer", content=binary, headers=headers),
        "TF Serving gRPC string_val": lambda s: _grpc_door(
            s.grpc_target, lambda ch: prediction_service_pb2_grpc.PredictionServiceStub(
                ch).Predict(strings("image", "image", OVER_CAP), timeout=30)),
        "v2 gRPC bytes_contents": lambda s: _grpc_door(
            s.grpc_target, lambda ch: pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                v2_bytes("image", "image", OVER_CAP, raw=False), timeout=30)),
    }


@pytest.mark.parametrize("door", list(_over_cap_doors()))
async def test_items_are_counted_before_any_is_decoded(make_server, door: str) -> None:
    """33 images for a batch limit of 32, the first corrupt: the answer is about the count
    (decoding first would have said item 0 is corrupt, after decoding the rest)."""
    server = await make_server()
    status, message = await _over_cap_doors()[door](server)
    assert status in (400, grpc.StatusCode.INVALID_ARGUMENT.value[0]), (status, message)
    assert "maximum batch size of 32" in message, message


async def test_a_requests_declared_pixels_are_budgeted_before_decoding(make_server) -> None:
    server = await make_server()
    bomb = b64(png_bomb(3500, 3500))  # 12.25 M pixels each, 12 KB on the wire
    status, message = await _rest_door(server.url, "/v1/digit:predict",
                                       json={"inputs": [{"b64": bomb}] * 6})
    assert status == 413, message
    assert "limit is 67108864 per request" in message


@pytest.mark.parametrize("path", ["/v1/models/image:predict", "/v1/digit:predict"])
async def test_large_images_decode_off_the_event_loop(make_server, report, path: str) -> None:
    """Four 12-megapixel images (12 KB each on the wire, so 'small' by bytes) decode in the
    pool: health keeps answering while they do."""
    server = await make_server()
    bomb = {"b64": b64(png_bomb(3500, 3500))}
    body = {"instances": [bomb] * 4} if path.startswith("/v1/models") else \
        {"inputs": [bomb] * 4}
    async with (httpx.AsyncClient(base_url=server.url, timeout=120) as client,
                HealthProbe(server.url) as probe):
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        resp = await client.post(path, json=body)
        took = time.perf_counter() - start
        await asyncio.sleep(0.1)
    gaps = probe.latencies
    report("happened", path=path, status=resp.status_code, request_s=took,
           health_max_ms=max(gaps) * 1000, health_p99_ms=percentile(gaps, 99) * 1000,
           pings=len(gaps))
    assert resp.status_code == 200, resp.text
    # On the loop, one health answer would wait for the whole decode.
    assert max(gaps) < max(0.1, took / 3), (max(gaps), took)


# Finding 4 --------------------------------------------------------------------------
MANY_EMPTY = [b""] * 400_000  # 1.6 MB raw: under the 2 MiB gRPC message limit


def _bytes_count_doors() -> dict[str, Callable[[Any], Any]]:
    binary, headers = v2_binary_body("tokens", MANY_EMPTY)
    return {
        "v2 REST binary BYTES": lambda s: _rest_door(
            s.url, "/v2/models/text/infer", content=binary, headers=headers),
        "v2 gRPC raw BYTES": lambda s: _grpc_door(
            s.grpc_target, lambda ch: pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                v2_bytes("text", "tokens", MANY_EMPTY, raw=True), timeout=30)),
        "v2 gRPC bytes_contents": lambda s: _grpc_door(
            s.grpc_target, lambda ch: pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                v2_bytes("text", "tokens", MANY_EMPTY, raw=False), timeout=30)),
        "TF Serving gRPC string_val": lambda s: _grpc_door(
            s.grpc_target, lambda ch: prediction_service_pb2_grpc.PredictionServiceStub(
                ch).Predict(strings("text", "tokens", MANY_EMPTY), timeout=30)),
    }


@pytest.mark.parametrize("door", list(_bytes_count_doors()))
async def test_string_tensors_are_counted_before_their_elements_are_read(
        make_server, door: str) -> None:
    """400 000 empty strings (1.6 MB or less) for a text model: refused for their count,
    before as many Python objects are made from them one by one."""
    server = await make_server()
    status, message = await _bytes_count_doors()[door](server)
    assert status in (400, grpc.StatusCode.INVALID_ARGUMENT.value[0]), (status, message)
    assert "400000 items in one request exceed the maximum batch size" in message, message


# Finding 5 --------------------------------------------------------------------------
async def test_int64_overflowing_shapes_are_400(make_server) -> None:
    server = await make_server()
    shape = [1 << 32, 1 << 32]  # the product wraps to 0 in int64: as many values as 'data'
    header = (b'{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [%d, %d], '
              b'"parameters": {"binary_data_size": 0}}]}' % tuple(shape))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        as_json = await client.post("/v2/models/digit/infer", json={"inputs": [
            {"name": "pixels", "datatype": "FP32", "shape": shape, "data": []}]})
        as_binary = await client.post("/v2/models/digit/infer", content=header, headers={
            "inference-header-content-length": str(len(header))})
    assert (as_json.status_code, as_binary.status_code) == (400, 400), \
        (as_json.text, as_binary.text)


async def test_versions_thousands_of_digits_long_are_400(make_server) -> None:
    server = await make_server()
    v = LONG_VERSION
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        answers = {
            "tfs status": await client.get(f"/v1/models/digit/versions/{v}"),
            "tfs metadata": await client.get(f"/v1/models/digit/versions/{v}/metadata"),
            "tfs predict": await client.post(f"/v1/models/digit/versions/{v}:predict",
                                             json={"instances": [[0.0] * 784]}),
            "v2 metadata": await client.get(f"/v2/models/digit/versions/{v}"),
            "v2 infer": await client.post(f"/v2/models/digit/versions/{v}/infer", json={
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784],
                            "data": [0.0] * 784}]}),
            "task": await client.post(f"/v1/digit:predict?version={v}",
                                      json={"input": [0] * 784}),
        }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 400)
    assert all(len(r.json()["error"]) < 200 for r in answers.values())  # echoed shortened
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [stub.ModelInfer(pb.ModelInferRequest(model_name="digit", model_version=v)),
                 stub.ModelReady(pb.ModelReadyRequest(name="digit", version=v)),
                 stub.ModelMetadata(pb.ModelMetadataRequest(name="digit", version=v))]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value


async def test_a_deeply_nested_v2_request_id_is_400(make_server) -> None:
    server = await make_server()
    nested = b"[" * 300 + b'"x"' + b"]" * 300
    body = (b'{"id": ' + nested + b', "inputs": [{"name": "pixels", "datatype": "FP32", '
            b'"shape": [1, 784], "data": [' + b",".join([b"0"] * 784) + b"]}]}")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        resp = await client.post("/v2/models/digit/infer", content=body,
                                 headers={"content-type": "application/json"})
        echoed = await client.post("/v2/models/digit/infer", json={
            "id": "req-1", "inputs": [{"name": "pixels", "datatype": "FP32",
                                       "shape": [1, 784], "data": [0.0] * 784}]})
    assert resp.status_code == 400 and "'id' must be a string" in resp.json()["error"]
    assert echoed.status_code == 200 and echoed.json()["id"] == "req-1"



# The same class, found while fixing these: JSON parsed into Python objects --------------
@pytest.mark.parametrize(("label", "body"), [
    ("1.4 M empty lists", b'{"inputs": [' + b",".join([b"[]"] * 1_400_000) + b"]}"),
    ("100 k empty strings", b'{"texts": [' + b",".join([b'""'] * 100_000) + b"]}"),
    ("2.6 M numbers", b'{"inputs": [' + b",".join([b"0"] * 2_600_000) + b"]}"),
])
async def test_json_that_would_parse_out_of_proportion_is_413(make_server, label: str,
                                                              body: bytes) -> None:
    """A 4 MB body of "[]," parses into 100 MB of lists (72 bytes each) and holds the
    event loop for the while: counted first, refused."""
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for path in ("/v1/digit:predict", "/v1/models/digit:predict",
                     "/v2/models/digit/infer", "/v1/text:predict"):
            with traced() as peak:
                resp = await client.post(path, content=body,
                                         headers={"content-type": "application/json"})
            assert resp.status_code == 413, (label, path, resp.text)
            assert peak() < 3 * len(body), (label, path, peak())
