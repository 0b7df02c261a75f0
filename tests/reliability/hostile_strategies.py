"""Hypothesis strategies for hostile requests through every door of the server.

Each strategy draws one request: tensors, shapes (up to int64's range and past numpy's
rank), datatypes (valid, mismatched, unknown), BYTES elements (images real, truncated,
lying about their size, decompression bombs; texts; numbers where strings belong),
versions, ids, base64, and bodies that lie about their own lengths. Requests are
data (``RestCall``, a gRPC request message), sent by test_hostile_fuzz.py.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated.tensorflow.core.framework import tensor_pb2, types_pb2
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2
from tests.integration.rest.images import digit_png, solid_rgb
from tests.reliability.test_hostile_payloads import png_bomb, png_header_only

MODELS = ["digit", "text", "image", "nope"]
INPUTS = {"digit": "pixels", "text": "tokens", "image": "image", "nope": "x"}
V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64", "BYTES"]
TF_DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_INT32,
             types_pb2.DT_INT64, types_pb2.DT_UINT8, types_pb2.DT_BOOL, types_pb2.DT_STRING,
             types_pb2.DT_COMPLEX64, types_pb2.DT_INVALID, 999]


@dataclass
class RestCall:
    method: str
    path: str
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


@functools.cache
def images() -> list[bytes]:
    """Encoded images: real ones, broken ones, ones that lie about their size, bombs."""
    png, jpeg = solid_rgb(200, 10, 10), solid_rgb(10, 10, 200, fmt="JPEG")
    return [png, jpeg, digit_png(3), png[:40], jpeg[:300], b"\x89PNG\r\n\x1a\n", b"GIF89a",
            png_header_only(1 << 30, 1 << 30), png_header_only(0, 5), png_bomb(1000, 1000),
            png_bomb(3500, 3500), png_bomb(5000, 5000), solid_rgb(1, 2, 3, size=600),
            solid_rgb(1, 2, 3, size=300, fmt="WEBP")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


dims = st.one_of(st.integers(0, 40), st.sampled_from([1, 3, 28, 32, 33, 100, 150, 784]),
                 st.integers(0, 2**63 - 1))
shapes = st.one_of(st.lists(dims, max_size=5), st.lists(dims, min_size=30, max_size=80))
leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=30)
numbers = st.lists(st.floats(-300, 300, width=32), min_size=0, max_size=800)
image = st.sampled_from(range(14)).map(lambda i: images()[i])
texts = st.one_of(st.text(max_size=60), st.sampled_from(["good fun", "", " ", "bad " * 30_000]))
bytes_elements = st.one_of(image, texts.map(lambda t: t.encode()), st.binary(max_size=64))
versions = st.one_of(st.none(), st.integers(-5, 3).map(str), st.just("7" * 5000),
                     st.sampled_from(["latest", "²", "0x1", "1.0", "-0"]))
ids = st.one_of(st.none(), st.text(max_size=20), json_values,
                st.integers(1, 400).map(lambda n: json.loads("[" * n + "1" + "]" * n)))


def _json(path: str, body: Any) -> RestCall:
    return RestCall("POST", path, json.dumps(body).encode(),
                    {"content-type": "application/json"})


def _version_path(prefix: str, model: str, version: str | None) -> str:
    return f"{prefix}/{model}" + ("" if version is None else f"/versions/{version}")


@st.composite
def tfserving_rest(draw: st.DrawFn) -> RestCall:
    model = draw(st.sampled_from(MODELS))
    path = _version_path("/v1/models", model, draw(versions)) + ":predict"
    key = draw(st.sampled_from(["instances", "inputs"]))
    values = draw(st.one_of(
        json_values, numbers, st.lists(numbers, max_size=40),
        st.lists(image.map(lambda b: {"b64": _b64(b)}), max_size=40),
        st.lists(texts, max_size=40),
        st.dictionaries(st.sampled_from([INPUTS[model], "other"]), json_values, max_size=2)))
    body: dict[str, Any] = {key: values}
    if draw(st.booleans()):
        body["signature_name"] = draw(st.sampled_from(["", "serving_default", "other"]))
    return _json(path, body)


def _v2_input(draw: st.DrawFn, model: str) -> dict[str, Any]:
    datatype = draw(st.one_of(st.sampled_from(V2_DATATYPES), st.text(max_size=6)))
    shape = draw(shapes)
    if datatype == "BYTES":
        data: Any = draw(st.one_of(st.lists(texts, max_size=40), json_values))
    else:
        data = draw(st.one_of(numbers, json_values))
    return {"name": draw(st.sampled_from([INPUTS[model], "other"])), "datatype": datatype,
            "shape": shape, "data": data}


@st.composite
def v2_rest_json(draw: st.DrawFn) -> RestCall:
    model = draw(st.sampled_from(MODELS))
    path = _version_path("/v2/models", model, draw(versions)) + "/infer"
    body: dict[str, Any] = {"inputs": [_v2_input(draw, model)
                                       for _ in range(draw(st.integers(0, 2)))]}
    if draw(st.booleans()):
        body["id"] = draw(ids)
    if draw(st.booleans()):
        body["outputs"] = draw(json_values)
    return _json(path, body)


def length_prefixed(elements: list[bytes], lie: int) -> bytes:
    return b"".join(struct.pack("<I", max(0, len(e) + lie)) + e for e in elements)


@st.composite
def v2_rest_binary(draw: st.DrawFn) -> RestCall:
    model = draw(st.sampled_from(MODELS))
    datatype = draw(st.sampled_from(V2_DATATYPES))
    if datatype == "BYTES":
        raw = length_prefixed(draw(st.lists(bytes_elements, max_size=40)),
                              draw(st.sampled_from([0, 0, 0, 1, -1, 1 << 20])))
    else:
        raw = draw(st.binary(max_size=8000))
    size = draw(st.one_of(st.just(len(raw)), st.integers(-1, 1 << 40)))
    header = json.dumps({"inputs": [{"name": INPUTS[model], "datatype": datatype,
                                     "shape": draw(shapes),
                                     "parameters": {"binary_data_size": size}}]}).encode()
    declared = draw(st.one_of(st.just(len(header)), st.integers(-1, len(header) + 100)))
    return RestCall("POST", f"/v2/models/{model}/infer", header + raw,
                    {"inference-header-content-length": str(declared),
                     "content-type": "application/octet-stream"})


@st.composite
def task_rest(draw: st.DrawFn) -> RestCall:
    task = draw(st.sampled_from(["digit", "text", "image"]))
    path = f"/v1/{task}:predict"
    if draw(st.booleans()):
        path += f"?top_k={draw(st.integers(-3, 20))}"
    form = draw(st.sampled_from(["json", "raw", "multipart", "text"]))
    if form == "raw":
        return RestCall("POST", path, draw(image), {"content-type": draw(st.sampled_from(
            ["image/png", "image/jpeg", "application/octet-stream", "application/json"]))})
    if form == "multipart":
        files = [("file", ("x.png", img, "image/png"))
                 for img in draw(st.lists(image, min_size=1, max_size=36))]
        return RestCall("POST", path, files=files)
    if form == "text":
        return RestCall("POST", path, draw(texts).encode(), {"content-type": "text/plain"})
    key = draw(st.sampled_from(["inputs", "input", "images", "image", "texts", "text"]))
    value = draw(st.one_of(
        json_values, st.lists(numbers, max_size=36), st.lists(texts, max_size=36),
        st.lists(image.map(lambda b: {"b64": _b64(b)}), max_size=36),
        st.lists(image.map(_b64), max_size=36)))
    return _json(path, {key: value})


def _tensor_proto(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    dtype = draw(st.sampled_from(TF_DTYPES))
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in draw(st.lists(st.integers(-1, 2**63 - 1) | dims, max_size=5)):
        proto.tensor_shape.dim.add(size=size)
    kind = draw(st.sampled_from(["content", "fill", "floats", "strings", "ints"]))
    if kind == "content":
        proto.tensor_content = draw(st.binary(max_size=8000))
    elif kind == "fill":
        proto.float_val.append(draw(st.floats(width=32)))
    elif kind == "floats":
        proto.float_val.extend(draw(numbers))
    elif kind == "strings":
        proto.string_val.extend(draw(st.lists(bytes_elements, max_size=40)))
    else:
        proto.int64_val.extend(draw(st.lists(st.integers(-2**63, 2**63 - 1), max_size=200)))
    return proto


@st.composite
def tfserving_grpc(draw: st.DrawFn) -> predict_pb2.PredictRequest:
    model = draw(st.sampled_from(MODELS))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if draw(st.booleans()):
        request.model_spec.version.value = draw(st.integers(-2**63, 2**63 - 1))
    for name in draw(st.lists(st.sampled_from([INPUTS[model], "other"]), max_size=2,
                              unique=True)):
        request.inputs[name].CopyFrom(_tensor_proto(draw))
    return request


@st.composite
def v2_grpc(draw: st.DrawFn) -> pb.ModelInferRequest:
    model = draw(st.sampled_from(MODELS))
    request = pb.ModelInferRequest(model_name=model, model_version=draw(versions) or "",
                                   id=draw(st.text(max_size=10)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 2))):
        datatype = draw(st.one_of(st.sampled_from(V2_DATATYPES), st.text(max_size=5)))
        tensor = request.inputs.add(name=draw(st.sampled_from([INPUTS[model], "other"])),
                                    datatype=datatype)
        tensor.shape.extend(draw(st.lists(st.integers(-2**63, 2**63 - 1) | dims,
                                          max_size=5)))
        elements = draw(st.lists(bytes_elements, max_size=40))
        if raw:
            request.raw_input_contents.append(
                length_prefixed(elements, draw(st.sampled_from([0, 0, 1, -1])))
                if datatype == "BYTES" else draw(st.binary(max_size=8000)))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(elements)
        else:
            tensor.contents.fp32_contents.extend(draw(numbers))
    return request



def heavy_calls() -> list[tuple[str, RestCall | tuple[str, Any]]]:
    """The most expensive requests each limit still lets in (or refuses only after
    reading its headers or counting): replayed concurrently, to measure memory and health
    at the limits rather than on average. gRPC calls as (method name, request)."""
    bomb = {"b64": _b64(png_bomb(3500, 3500))}  # 12.25 M pixels: just under the limit
    floats = b"[" + b",".join([b"0.5"] * 2_400_000) + b"]"  # 9 MB: under the values limit
    lists = b"[" + b",".join([b"[]"] * 5_000_000) + b"]"  # 15 MB of "[],"
    fill = predict_pb2.PredictRequest()
    fill.model_spec.name = "digit"
    fill.inputs["pixels"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                                                          float_val=[0.5]))
    for size in (32, 784):
        fill.inputs["pixels"].tensor_shape.dim.add(size=size)
    strings = pb.ModelInferRequest(model_name="text")
    strings.inputs.add(name="tokens", datatype="BYTES", shape=[400_000])
    strings.raw_input_contents.append(b"\0\0\0\0" * 400_000)
    return [
        ("bombs at the pixel limit", _json("/v1/models/image:predict",
                                           {"instances": [bomb] * 4})),
        ("2.4 M numbers", RestCall("POST", "/v1/digit:predict",
                                   b'{"inputs": ' + floats + b"}",
                                   {"content-type": "application/json"})),
        ("5 M empty lists", RestCall("POST", "/v2/models/digit/infer",
                                     b'{"inputs": ' + lists + b"}",
                                     {"content-type": "application/json"})),
        ("a 12 M-character text", _json("/v1/text:predict", {"text": "good " * 2_400_000})),
        ("one-value fill of a full batch", ("Predict", fill)),
        ("400 k BYTES elements", ("ModelInfer", strings)),
    ]
