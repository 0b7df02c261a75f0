"""Triton's tritonclient (grpc and http), used as a user would, against our v2 endpoints."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.compat.helpers import ort_outputs
from tests.integration.grpc.helpers import digits, png


def _image_input(module, image: bytes | np.ndarray):
    """Encoded bytes (BYTES, decoded by the server's codec) or a float32 tensor."""
    if isinstance(image, bytes):
        tensor = module.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image], dtype=object))
    else:
        tensor = module.InferInput("image", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
    return tensor


def _triton_calls(module, url: str, pixels: np.ndarray, image: bytes | np.ndarray) -> dict:
    client = module.InferenceServerClient(url)
    try:
        digit_in = module.InferInput("pixels", list(pixels.shape), "FP32")
        digit_in.set_data_from_numpy(pixels)
        digit = client.infer("digit", [digit_in],
                             outputs=[module.InferRequestedOutput("probabilities")])
        image_out = client.infer("image", [_image_input(module, image)], model_version="1")
        return {"live": client.is_server_live(), "ready": client.is_server_ready(),
                "model_ready": client.is_model_ready("digit"),
                "server": client.get_server_metadata(),
                "meta": client.get_model_metadata("digit"),
                "digit": digit.as_numpy("probabilities"),
                "image": image_out.as_numpy("probability")}
    finally:
        client.close()


def _check(got: dict, repository, codec, pixels: np.ndarray, image: bytes) -> None:
    want = ort_outputs(repository, "digit", {"pixels": pixels})["probabilities"]
    np.testing.assert_array_equal(got["digit"], want)
    want_image = ort_outputs(repository, "image", {"image": codec.decode(image)[None]})
    np.testing.assert_allclose(got["image"], want_image["probability"], rtol=1e-6)
    assert got["live"] and got["ready"] and got["model_ready"]


async def test_tritonclient_grpc(full_server, tiny_model_repository):
    import tritonclient.grpc as triton_grpc

    pixels, image = digits(3), png((20, 20, 220), (150, 150))
    got = await asyncio.to_thread(_triton_calls, triton_grpc, full_server.grpc_target,
                                  pixels, image)
    codec = full_server.process.dataplane.model("image").codec
    _check(got, tiny_model_repository, codec, pixels, image)
    assert got["server"].name == "modelserve"
    assert got["meta"].inputs[0].name == "pixels"
    assert list(got["meta"].inputs[0].shape) == [-1, 784]

    def index():
        client = triton_grpc.InferenceServerClient(full_server.grpc_target)
        try:
            return client.get_model_repository_index()
        finally:
            client.close()
    models = (await asyncio.to_thread(index)).models
    assert {(m.name, m.state) for m in models} >= {("digit", "READY"), ("text", "READY")}


@pytest.mark.parametrize("image_as", ["BYTES", "FP32"])
async def test_tritonclient_http(full_server, tiny_model_repository, image_as):
    import tritonclient.http as triton_http

    pixels, image = digits(3, seed=5), png((220, 20, 20), (150, 150))
    url = full_server.http_url.removeprefix("http://")
    codec = full_server.process.dataplane.model("image").codec
    # The v2 REST route takes the image encoded (BYTES, sent by tritonclient in the binary
    # tensor extension and decoded by the model's codec) or as the model's float tensor.
    sent = image if image_as == "BYTES" else codec.decode(image)[None]
    got = await asyncio.to_thread(_triton_calls, triton_http, url, pixels, sent)
    _check(got, tiny_model_repository, codec, pixels, image)
    assert got["server"]["name"] == "modelserve"
    assert got["meta"]["inputs"][0] == {"name": "pixels", "datatype": "FP32",
                                        "shape": [-1, 784]}
