"""Task endpoints over the tiny models: every input form, top_k, model and version."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.fixtures.tiny_models import digit_reference
from tests.integration.rest.images import digit_png, digit_values, solid_rgb


@pytest.mark.parametrize("block", [2, 7])
async def test_digit_numbers_answer_the_reference(rest_client, block: int) -> None:
    values = digit_values(block)
    resp = await rest_client.client.post("/v1/digit:predict", json={"inputs": [values]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["model_name"], body["model_version"]) == ("digit", "1")
    expected = digit_reference(np.array([values], np.float32))[0]
    pred = body["predictions"][0]
    assert pred["label"] == str(block)
    assert pred["probability"] == pytest.approx(float(expected.max()), rel=1e-5)
    assert len(pred["top"]) == 10
    assert sum(t["probability"] for t in pred["top"]) == pytest.approx(1.0, rel=1e-4)


async def test_digit_28x28_and_0_255_scale(rest_client) -> None:
    grid = (np.array(digit_values(4)).reshape(28, 28) * 255).tolist()
    resp = await rest_client.client.post("/v1/digit:predict?top_k=3", json={"input": grid})
    pred = resp.json()["predictions"][0]
    assert pred["label"] == "4" and len(pred["top"]) == 3


async def test_digit_as_image_b64_multipart_and_raw(rest_client) -> None:
    png = digit_png(5)
    b64 = base64.b64encode(png).decode()
    c = rest_client.client
    answers = [
        await c.post("/v1/digit:predict", json={"inputs": [{"b64": b64}]}),
        await c.post("/v1/digit:predict", files=[("file", ("d.png", png, "image/png")),
                                                 ("file", ("e.png", digit_png(1), "image/png"))]),
        await c.post("/v1/digit:predict", content=png, headers={"content-type": "image/png"}),
    ]
    labels = [[p["label"] for p in r.json()["predictions"]] for r in answers]
    assert labels == [["5"], ["5", "1"], ["5"]]


async def test_text_forms(rest_client) -> None:
    c = rest_client.client
    one = await c.post("/v1/text:predict", json={"text": "a good fun movie"})
    many = await c.post("/v1/text:predict", json={"texts": ["good", "awful bad plot"]})
    plain = await c.post("/v1/text:predict", content=b"great fun",
                         headers={"content-type": "text/plain; charset=utf-8"})
    assert [p["label"] for p in one.json()["predictions"]] == ["positive"]
    assert [p["label"] for p in many.json()["predictions"]] == ["positive", "negative"]
    assert plain.json()["predictions"][0]["label"] == "positive"
    top = one.json()["predictions"][0]["top"]
    assert {t["label"] for t in top} == {"positive", "negative"}
    assert sum(t["probability"] for t in top) == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
async def test_image_formats_and_forms(rest_client, fmt: str) -> None:
    red, blue = solid_rgb(250, 0, 0, fmt=fmt), solid_rgb(0, 0, 250, fmt=fmt)
    c = rest_client.client
    multipart = await c.post("/v1/image:predict",
                             files=[("file", ("r", red, "image/x")), ("file", ("b", blue, "x"))])
    raw = await c.post("/v1/image:predict", content=red,
                       headers={"content-type": f"image/{fmt.lower()}"})
    js = await c.post("/v1/image:predict", json={"images": [
        base64.b64encode(blue).decode(), {"b64": base64.b64encode(red).decode()}]})
    # The tiny image model: sigmoid(4 * (mean red - mean blue)) = P("sneaker").
    assert [p["label"] for p in multipart.json()["predictions"]] == ["sneaker", "ankle_boot"]
    assert raw.json()["predictions"][0]["label"] == "sneaker"
    assert [p["label"] for p in js.json()["predictions"]] == ["ankle_boot", "sneaker"]
    assert raw.json()["predictions"][0]["probability"] == pytest.approx(
        1 / (1 + np.exp(-4 * 250 / 255)), rel=2e-2)


async def test_model_and_version_query(rest_client) -> None:
    c = rest_client.client
    ok = await c.post("/v1/digit:predict?model=digit&version=1", json={"inputs": [[0.0] * 784]})
    missing = await c.post("/v1/digit:predict?version=9", json={"inputs": [[0.0] * 784]})
    wrong = await c.post("/v1/digit:predict?model=text", json={"inputs": [[0.0] * 784]})
    bad = await c.post("/v1/digit:predict?version=x", json={"inputs": [[0.0] * 784]})
    assert ok.status_code == 200
    assert missing.status_code == 404 and "version 9" in missing.json()["error"]
    assert wrong.status_code == 400 and "text task" in wrong.json()["error"]
    assert bad.status_code == 400 and "version" in bad.json()["error"]


async def test_json_sent_the_way_curl_d_sends_it(rest_client) -> None:
    # `curl -d '{...}'` labels the body application/x-www-form-urlencoded.
    form = {"content-type": "application/x-www-form-urlencoded"}
    resp = await rest_client.client.post("/v1/text:predict", headers=form,
                                         content=b'{"text": "a great film"}')
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"][0]["label"] in ("negative", "positive")
    resp = await rest_client.client.post("/v1/text:predict", headers=form, content=b"text=hi")
    assert resp.status_code == 415 and "content type" in resp.json()["error"]
