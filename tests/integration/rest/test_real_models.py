"""The three real converted models behind the REST API: answers equal ONNX Runtime's."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serving.codecs import DigitCodec, ImageCodec
from tests.integration.rest.images import digit_png, solid_rgb

pytestmark = pytest.mark.slow


def direct(repository: Path, name: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(repository / name / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


async def test_real_models_over_rest(make_rest_client, real_model_repository: Path) -> None:
    app = await make_rest_client(repository=real_model_repository)
    c = app.client
    for name in ("digit", "text", "image"):
        assert (await c.get(f"/v2/models/{name}/ready")).status_code == 200

    png = digit_png(3)
    digit = (await c.post("/v1/digit:predict", files=[("file", ("d.png", png, "image/png"))]))
    expected = direct(real_model_repository, "digit",
                      {"pixels": DigitCodec().decode_image(png)[None]})[0]
    top = {t["label"]: t["probability"] for t in digit.json()["predictions"][0]["top"]}
    np.testing.assert_allclose([top[str(i)] for i in range(10)], expected, rtol=1e-4, atol=1e-6)

    jpeg = solid_rgb(180, 120, 60, size=200, fmt="JPEG")
    tfs = await c.post("/v1/models/image:predict",
                       json={"instances": [{"b64": base64.b64encode(jpeg).decode()}]})
    expected = direct(real_model_repository, "image",
                      {"image": ImageCodec().decode(jpeg)[None]})
    np.testing.assert_allclose(tfs.json()["predictions"], expected, rtol=1e-4, atol=1e-6)

    texts = ["a moving and beautifully acted film", "dull, lifeless and far too long"]
    text = await c.post("/v1/text:predict", json={"texts": texts})
    preds = text.json()["predictions"]
    tokens = app.dataplane.model("text").codec.encode(texts)
    positive = direct(real_model_repository, "text", {"tokens": tokens})[:, 0]
    # Whatever this quickly trained model thinks, the server must say the same.
    assert [pr["label"] for pr in preds] == ["positive" if p > 0.5 else "negative"
                                             for p in positive]
    assert [pr["probability"] for pr in preds] == pytest.approx(
        [max(p, 1 - p) for p in positive], rel=1e-4)
