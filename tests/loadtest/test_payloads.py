"""The payloads are the real data sets, decoded the way the server decodes them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import zarr
from PIL import Image

from loadtest import bodies, payloads
from serving.codecs import DigitCodec, ImageCodec


@pytest.fixture(scope="module")
def p() -> payloads.Payloads:
    return payloads.load_payloads()


def test_digits_are_the_mnist_test_set_as_zarr_reads_it(p: payloads.Payloads):
    path = payloads._package_dir("pureml") / payloads.MNIST_ZARR
    group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
    n = len(p.digits)
    np.testing.assert_array_equal(p.digits, group["test_images"][:n])
    np.testing.assert_array_equal(p.digit_labels, group["test_labels"][:n])
    assert set(p.digit_labels.tolist()) == set(range(10))


def test_texts_are_review_snippets(p: payloads.Payloads):
    assert len(p.texts) == 256 and len(set(p.texts)) > 250
    assert all(isinstance(t, str) and len(t.split()) >= 2 for t in p.texts)


def test_images_have_the_model_size_and_photos_camera_sizes(p: payloads.Payloads):
    sizes = {Image.open(io.BytesIO(j)).size for j in p.images}
    assert sizes == {p.image_size}
    photo_sizes = {Image.open(io.BytesIO(j)).size for j in p.photos}
    assert photo_sizes == set(payloads.PHOTO_SIZES)
    decoded = ImageCodec().decode(p.images[0])
    assert decoded.shape == (150, 150, 3) and 0 <= decoded.min() < decoded.max() <= 1


def test_digit_bodies_decode_to_the_same_pixels_in_every_form(p: payloads.Payloads):
    codec = DigitCodec()
    expected = p.digits[:4].reshape(4, -1) / 255.0
    got = []
    for body in bodies.digit_task_bodies(p, 4):
        if body.kind == "multipart":
            start = body.data.index(b"\r\n\r\n") + 4
            png = body.data[start:body.data.rindex(b"\r\n--")]
            got.append(codec.decode_image(png))
            continue
        doc = json.loads(body.data)
        item = doc["input"] if "input" in doc else doc["inputs"][0]
        got.append(codec.decode_image(__import__("base64").b64decode(item["b64"]))
                   if isinstance(item, dict) else codec.decode_values(item))
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-6)


def test_tensor_bodies_name_the_input_from_metadata(p: payloads.Payloads):
    inp = bodies.ModelInput.from_v2_metadata(
        {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]})
    tensor = bodies.digit_tensors(p, 1)[0]
    v2 = json.loads(bodies.v2_body("digit", inp, tensor).data)
    assert v2["inputs"][0]["name"] == "pixels" and v2["inputs"][0]["shape"] == [1, 784]
    tfs = json.loads(bodies.tfserving_body("digit", tensor).data)
    assert np.asarray(tfs["instances"]).shape == (1, 784)


def test_check_answer_counts_results():
    body = bodies.Body("/v1/digit:predict", bodies.JSON, b"{}", items=2)
    assert bodies.check_answer(body, {"predictions": [{}, {}]}) is None
    assert "expected 2" in bodies.check_answer(body, {"predictions": [{}]})
