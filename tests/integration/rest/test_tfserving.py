"""TensorFlow Serving REST API: status, metadata, row and columnar predict, b64, errors."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.rest.images import digit_png, digit_values, solid_rgb


async def test_status_shapes(rest_client) -> None:
    c = rest_client.client
    for path in ("/v1/models/digit", "/v1/models/digit/versions/1",
                 "/v1/models/digit/labels/latest"):
        resp = await c.get(path)
        assert resp.json() == {"model_version_status": [
            {"version": "1", "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}]}, path
    assert (await c.get("/v1/models/digit/versions/3")).status_code == 404
    assert (await c.get("/v1/models/nope")).json()["error"]


async def test_metadata_signature_def(rest_client) -> None:
    body = (await rest_client.client.get("/v1/models/text/versions/1/metadata")).json()
    assert body["model_spec"] == {"name": "text", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["tokens"]["dtype"] == "DT_INT32"
    assert [d["size"] for d in sig["inputs"]["tokens"]["tensor_shape"]["dim"]] == ["-1", "100"]
    assert sig["outputs"]["probability"]["dtype"] == "DT_FLOAT"


async def test_row_and_columnar_predict(rest_client) -> None:
    pixels = np.random.default_rng(1).random((3, 784), dtype=np.float32)
    expected = digit_reference(pixels)
    c = rest_client.client
    rows = await c.post("/v1/models/digit:predict",
                        json={"signature_name": "serving_default", "instances": pixels.tolist()})
    named = await c.post("/v1/models/digit/versions/1:predict",
                         json={"instances": [{"pixels": p} for p in pixels.tolist()]})
    cols = await c.post("/v1/models/digit/labels/latest:predict",
                        json={"inputs": {"pixels": pixels.tolist()}})
    bare = await c.post("/v1/models/digit:predict", json={"inputs": pixels.tolist()})
    np.testing.assert_allclose(rows.json()["predictions"], expected, rtol=1e-5)
    np.testing.assert_allclose(named.json()["predictions"], expected, rtol=1e-5)
    np.testing.assert_allclose(cols.json()["outputs"], expected, rtol=1e-5)
    np.testing.assert_allclose(bare.json()["outputs"], expected, rtol=1e-5)


async def test_b64_images_and_text_strings(rest_client) -> None:
    c = rest_client.client
    image = await c.post("/v1/models/image:predict", json={"instances": [
        {"b64": base64.b64encode(solid_rgb(255, 0, 0)).decode()},
        {"b64": base64.b64encode(solid_rgb(0, 0, 255)).decode()}]})
    p = np.array(image.json()["predictions"])
    assert p.shape == (2, 1)
    assert p[:, 0] == pytest.approx([image_reference(255, 0, 0), image_reference(0, 0, 255)],
                                    rel=1e-5)
    digit = await c.post("/v1/models/digit:predict",
                         json={"instances": [{"b64": base64.b64encode(digit_png(3)).decode()}]})
    expected = digit_reference(np.array([digit_values(3)], np.float32))[0]
    np.testing.assert_allclose(digit.json()["predictions"][0], expected, rtol=1e-5)
    assert int(np.argmax(expected)) == 3
    text = await c.post("/v1/models/text:predict", json={"instances": ["good fun", "awful"]})
    t = np.array(text.json()["predictions"])
    assert t.shape == (2, 1)
    assert t[:, 0] == pytest.approx([text_reference("good fun"), text_reference("awful")],
                                    rel=1e-5)


@pytest.mark.parametrize(("body", "message"), [
    ({"instances": [[0.5] * 783]}, "shape"),
    ({"instances": [[0.5] * 784], "inputs": [[0.5] * 784]}, "exactly one"),
    ({"instances": []}, "non-empty"),
    ({"instances": [[0.5] * 784], "signature_name": "other"}, "signature"),
    ({"inputs": {"pixels": [[0.5] * 784], "extra": [1]}}, "unknown inputs"),
    ({"instances": [["a"] * 784]}, "float32"),
    ({"instances": [[0.5] * 784, [0.5] * 10]}, "ragged"),
    ({"instances": [[0.5] * 784, [0.5] * 700, [0.5] * 868]}, "ragged"),  # 3 x 784 numbers
])
async def test_predict_errors_use_tf_serving_shape(rest_client, body: dict, message: str) -> None:
    resp = await rest_client.client.post("/v1/models/digit:predict", json=body)
    assert resp.status_code == 400
    assert set(resp.json()) == {"error"} and message in resp.json()["error"]


async def test_image_tensor_as_nested_lists(rest_client) -> None:
    """A 4-D float tensor in "instances" (the fast parse) predicts as the same tensor in v2."""
    pixels = np.random.default_rng(2).random((2, 150, 150, 3), dtype=np.float32)
    c = rest_client.client
    tfs = await c.post("/v1/models/image:predict", json={"instances": pixels.tolist()})
    v2 = await c.post("/v2/models/image/infer", json={"inputs": [{
        "name": "image", "shape": [2, 150, 150, 3], "datatype": "FP32",
        "data": pixels.reshape(-1).tolist()}]})
    assert tfs.status_code == v2.status_code == 200, tfs.text + v2.text
    np.testing.assert_allclose(np.array(tfs.json()["predictions"]).reshape(-1),
                               v2.json()["outputs"][0]["data"], rtol=1e-6)


async def test_int_inputs_reject_fractions(rest_client) -> None:
    c = rest_client.client
    ok = await c.post("/v1/models/text:predict", json={"instances": [[1] * 100]})
    frac = await c.post("/v1/models/text:predict", json={"instances": [[1.5] * 100]})
    big = await c.post("/v1/models/text:predict", json={"instances": [[2**40] * 100]})
    assert ok.status_code == 200
    assert frac.status_code == 400 and "integers" in frac.json()["error"]
    assert big.status_code == 400 and "range" in big.json()["error"]
