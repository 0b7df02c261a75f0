"""Open Inference Protocol v2 REST: health, metadata, infer (JSON and binary extension)."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.rest.images import solid_rgb


async def test_health_and_server_metadata(rest_client) -> None:
    c = rest_client.client
    assert (await c.get("/v2/health/live")).status_code == 200
    assert (await c.get("/v2/health/ready")).status_code == 200
    meta = (await c.get("/v2")).json()
    assert meta["name"] == "modelserve" and "binary_tensor_data" in meta["extensions"]
    rest_client.dataplane.start_draining()
    assert (await c.get("/v2/health/ready")).status_code == 503
    assert (await c.get("/v2/health/live")).status_code == 200


async def test_model_metadata_and_ready(rest_client) -> None:
    c = rest_client.client
    meta = (await c.get("/v2/models/digit/versions/1")).json()
    assert meta["name"] == "digit" and meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert (await c.get("/v2/models/digit/ready")).status_code == 200
    assert (await c.get("/v2/models/digit/versions/2/ready")).status_code == 404
    assert (await c.get("/v2/models/nope")).status_code == 404


async def test_json_infer_matches_reference(rest_client) -> None:
    pixels = np.random.default_rng(2).random((2, 784), dtype=np.float32)
    resp = await rest_client.client.post("/v2/models/digit/infer", json={
        "id": "req-7", "inputs": [{"name": "pixels", "shape": [2, 784], "datatype": "FP32",
                                   "data": pixels.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}]})
    body = resp.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("digit", "1", "req-7")
    out = body["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("probabilities", "FP32", [2, 10])
    np.testing.assert_allclose(np.reshape(out["data"], (2, 10)), digit_reference(pixels),
                               rtol=1e-5)


async def test_binary_tensor_data_both_ways(rest_client) -> None:
    pixels = np.random.default_rng(3).random((3, 784), dtype=np.float32)
    raw = pixels.astype("<f4").tobytes()
    header = orjson.dumps({"inputs": [{"name": "pixels", "shape": [3, 784], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": "probabilities",
                                        "parameters": {"binary_data": True}}]})
    resp = await rest_client.client.post(
        "/v2/models/digit/versions/1/infer", content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header)),
                 "content-type": "application/octet-stream"})
    assert resp.status_code == 200, resp.text
    n = int(resp.headers["inference-header-content-length"])
    meta = orjson.loads(resp.content[:n])
    out = meta["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 3 * 10 * 4 and "data" not in out
    result = np.frombuffer(resp.content[n:], "<f4").reshape(out["shape"])
    np.testing.assert_allclose(result, digit_reference(pixels), rtol=1e-5)


async def test_binary_output_for_all_outputs(rest_client) -> None:
    tokens = np.ones((1, 100), np.int32)  # token 1 is "the": the tiny model scores it 0
    raw = tokens.tobytes()
    header = orjson.dumps({"inputs": [{"name": "tokens", "shape": [1, 100], "datatype": "INT32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}})
    resp = await rest_client.client.post(
        "/v2/models/text/infer", content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))})
    n = int(resp.headers["inference-header-content-length"])
    assert len(resp.content) == n + 4
    assert struct.unpack("<f", resp.content[n:])[0] == 0.5  # sigmoid(0), exact in float32


@pytest.mark.parametrize(("body", "message"), [
    ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP64",
                  "data": [0.0] * 784}]}, "must be FP32"),
    ({"inputs": [{"name": "pixels", "shape": [2, 784], "datatype": "FP32",
                  "data": [0.0] * 784}]}, "needs 1568 values"),
    ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "NOPE",
                  "data": [0.0] * 784}]}, "datatype"),
    ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32",
                  "data": [None] * 784}]}, "NaN"),
    ({"inputs": []}, "non-empty"),
    ({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32",
                  "data": [0.0] * 784}], "outputs": [{"name": "nope"}]}, "no output"),
])
async def test_infer_errors(rest_client, body: dict, message: str) -> None:
    resp = await rest_client.client.post("/v2/models/digit/infer", json=body)
    assert resp.status_code == 400
    assert message in resp.json()["error"]


async def test_binary_size_mismatch_is_400(rest_client) -> None:
    header = orjson.dumps({"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 100}}]})
    resp = await rest_client.client.post(
        "/v2/models/digit/infer", content=header + b"\0" * 100,
        headers={"Inference-Header-Content-Length": str(len(header))})
    assert resp.status_code == 400 and "3136 bytes" in resp.json()["error"]


async def test_repository_index(rest_client) -> None:
    resp = await rest_client.client.post("/v2/repository/index")
    assert {(m["name"], m["state"]) for m in resp.json()} == {
        ("digit", "READY"), ("text", "READY"), ("image", "READY")}


async def test_bytes_images_over_the_binary_extension(rest_client) -> None:
    # Encoded images as BYTES for the image model's FP32 input, as over gRPC: the model's
    # codec decodes them (length-prefixed elements, Triton's BYTES framing).
    raw = b"".join(struct.pack("<I", len(b)) + b
                   for b in (solid_rgb(255, 0, 0), solid_rgb(0, 0, 255)))
    header = orjson.dumps({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw)}}]})
    resp = await rest_client.client.post(
        "/v2/models/image/infer", content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))})
    assert resp.status_code == 200, resp.text
    prob = resp.json()["outputs"][0]["data"]
    assert prob == pytest.approx([image_reference(255, 0, 0), image_reference(0, 0, 255)],
                                 rel=1e-5)


async def test_bytes_texts_as_json(rest_client) -> None:
    resp = await rest_client.client.post("/v2/models/text/infer", json={"inputs": [
        {"name": "tokens", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"][0]["data"] == pytest.approx(
        [text_reference("good"), text_reference("bad")], rel=1e-5)


async def test_bytes_that_are_not_an_image_are_400(rest_client) -> None:
    raw = struct.pack("<I", 5) + b"hello"
    header = orjson.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw)}}]})
    resp = await rest_client.client.post(
        "/v2/models/image/infer", content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))})
    assert resp.status_code == 400 and "item 0" in resp.json()["error"]
