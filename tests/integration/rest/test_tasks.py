"""Task endpoints over the tiny models: every input form, top_k, model and version.

Every test runs on both lanes (tests/fixtures/rest_lanes.py): a real server, whose HTTP
protocol answers these routes itself as in production, and the in-process ASGI lane."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.rest.images import digit_png, digit_values, solid_rgb


@pytest.mark.parametrize("block", [2, 7])
async def test_digit_numbers_answer_the_reference(lane, block: int) -> None:
    values = digit_values(block)
    resp = await lane.post("/v1/digit:predict", json={"inputs": [values]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["model_name"], body["model_version"]) == ("digit", "1")
    expected = digit_reference(np.array([values], np.float32))[0]
    pred = body["predictions"][0]
    assert pred["label"] == str(block)
    assert pred["probability"] == pytest.approx(float(expected.max()), rel=1e-5)
    assert len(pred["top"]) == 10
    assert sum(t["probability"] for t in pred["top"]) == pytest.approx(1.0, rel=1e-4)


async def test_digit_28x28_and_0_255_scale(lane) -> None:
    values = digit_values(4)
    grid = (np.array(values).reshape(28, 28) * 255).tolist()
    resp = await lane.post("/v1/digit:predict?top_k=3", json={"input": grid})
    assert resp.status_code == 200, resp.text
    pred = resp.json()["predictions"][0]
    expected = digit_reference(np.array([values], np.float32))[0]
    best = np.argsort(-expected)[:3]
    assert [t["label"] for t in pred["top"]] == [str(i) for i in best]
    assert [t["probability"] for t in pred["top"]] == pytest.approx(expected[best], rel=1e-5)
    assert pred["label"] == "4"


async def test_digit_as_image_b64_multipart_and_raw(lane) -> None:
    png = digit_png(5)
    b64 = base64.b64encode(png).decode()
    c = lane
    answers = [
        await c.post("/v1/digit:predict", json={"inputs": [{"b64": b64}]}),
        await c.post("/v1/digit:predict", files=[("file", ("d.png", png, "image/png")),
                                                 ("file", ("e.png", digit_png(1), "image/png"))]),
        await c.post("/v1/digit:predict", content=png, headers={"content-type": "image/png"}),
    ]
    assert [r.status_code for r in answers] == [200] * 3, [r.text for r in answers]
    labels = [[p["label"] for p in r.json()["predictions"]] for r in answers]
    assert labels == [["5"], ["5", "1"], ["5"]]
    # The PNG lights the same pixels as digit_values(5): the same probabilities.
    expected = float(digit_reference(np.array([digit_values(5)], np.float32))[0].max())
    assert answers[2].json()["predictions"][0]["probability"] == pytest.approx(expected,
                                                                               rel=1e-5)


async def test_text_forms(lane) -> None:
    c = lane
    one = await c.post("/v1/text:predict", json={"text": "a good fun movie"})
    many = await c.post("/v1/text:predict", json={"texts": ["good", "awful bad plot"]})
    plain = await c.post("/v1/text:predict", content=b"great fun",
                         headers={"content-type": "text/plain; charset=utf-8"})
    assert [r.status_code for r in (one, many, plain)] == [200] * 3
    assert [p["label"] for p in one.json()["predictions"]] == ["positive"]
    assert [p["label"] for p in many.json()["predictions"]] == ["positive", "negative"]
    assert plain.json()["predictions"][0]["label"] == "positive"
    top = one.json()["predictions"][0]["top"]
    p = text_reference("a good fun movie")  # sigmoid(2)
    assert [(t["label"], t["probability"]) for t in top] == [
        ("positive", pytest.approx(p, rel=1e-6)), ("negative", pytest.approx(1 - p, rel=1e-5))]
    probs = [pr["probability"] for pr in many.json()["predictions"]]
    expected = [text_reference("good"), 1 - text_reference("awful bad plot")]
    assert probs == pytest.approx(expected, rel=1e-5)
    assert plain.json()["predictions"][0]["probability"] == pytest.approx(
        text_reference("great fun"), rel=1e-6)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
async def test_image_formats_and_forms(lane, fmt: str) -> None:
    red, blue = solid_rgb(250, 0, 0, fmt=fmt), solid_rgb(0, 0, 250, fmt=fmt)
    c = lane
    multipart = await c.post("/v1/image:predict",
                             files=[("file", ("r", red, "image/x")), ("file", ("b", blue, "x"))])
    raw = await c.post("/v1/image:predict", content=red,
                       headers={"content-type": f"image/{fmt.lower()}"})
    js = await c.post("/v1/image:predict", json={"images": [
        base64.b64encode(blue).decode(), {"b64": base64.b64encode(red).decode()}]})
    assert [r.status_code for r in (multipart, raw, js)] == [200] * 3
    # The tiny image model: sigmoid(4 * (mean red - mean blue)) = P("sneaker").
    assert [p["label"] for p in multipart.json()["predictions"]] == ["sneaker", "ankle_boot"]
    assert raw.json()["predictions"][0]["label"] == "sneaker"
    assert [p["label"] for p in js.json()["predictions"]] == ["ankle_boot", "sneaker"]
    # Lossless formats keep the colour exactly; JPEG and lossy WEBP move it a little.
    rel = 1e-5 if fmt in ("PNG", "BMP") else 2e-2
    assert raw.json()["predictions"][0]["probability"] == pytest.approx(
        image_reference(250, 0, 0), rel=rel)
    assert js.json()["predictions"][0]["probability"] == pytest.approx(
        1 - image_reference(0, 0, 250), rel=rel)


async def test_model_and_version_query(lane) -> None:
    c = lane
    ok = await c.post("/v1/digit:predict?model=digit&version=1", json={"inputs": [[0.0] * 784]})
    missing = await c.post("/v1/digit:predict?version=9", json={"inputs": [[0.0] * 784]})
    wrong = await c.post("/v1/digit:predict?model=text", json={"inputs": [[0.0] * 784]})
    bad = await c.post("/v1/digit:predict?version=x", json={"inputs": [[0.0] * 784]})
    assert ok.status_code == 200
    assert (ok.json()["model_name"], ok.json()["model_version"]) == ("digit", "1")
    assert missing.status_code == 404 and "version 9" in missing.json()["error"]
    assert wrong.status_code == 400 and "text task" in wrong.json()["error"]
    assert bad.status_code == 400 and "version" in bad.json()["error"]


async def test_json_sent_the_way_curl_d_sends_it(lane) -> None:
    # `curl -d '{...}'` labels the body application/x-www-form-urlencoded.
    form = {"content-type": "application/x-www-form-urlencoded"}
    resp = await lane.post("/v1/text:predict", headers=form,
                           content=b'{"text": "a great film"}')
    assert resp.status_code == 200, resp.text
    pred = resp.json()["predictions"][0]
    assert pred["label"] == "positive"
    assert pred["probability"] == pytest.approx(text_reference("a great film"), rel=1e-6)
    resp = await lane.post("/v1/text:predict", headers=form, content=b"text=hi")
    assert resp.status_code == 415 and "content type" in resp.json()["error"]
