"""The playground's page, assets and its two routes (in-process app, tiny models)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
from PIL import Image

from serving.codecs import ImageCodec
from serving.rest.playground import PAGE_DIR, render_page
from tests.integration.rest.images import digit_values, solid_rgb

DIGIT = {"inputs": [digit_values(3)]}


def inlined_config(html: str) -> dict:
    found = re.search(r'<script id="playground-config" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found, html[:500]
    return json.loads(found.group(1))


async def test_page_at_root_with_its_settings_inlined(make_rest_client) -> None:
    app = await make_rest_client(grpc_port=8512)
    page = await app.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    version = app.dataplane.server_metadata()["version"]
    assert inlined_config(page.text) == {"grpc_port": 8512, "api_key_required": False,
                                         "server_version": version,
                                         "tasks": ["digit", "image", "text"]}
    # No CDN: every script and stylesheet is served by this server.
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert ref.startswith(("/", "data:")), ref


async def test_every_asset_the_page_loads_is_served(make_rest_client) -> None:
    app = await make_rest_client()
    page = (await app.client.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="(/playground/static/[^"]+)"', page))
    # ES module imports, followed from main.js.
    todo = [p for p in wanted if p.endswith(".js")]
    while todo:
        path = todo.pop()
        source = await app.client.get(path)
        assert source.status_code == 200, path
        for module in re.findall(r'from "\./([\w.]+)"', source.text):
            child = path.rsplit("/", 1)[0] + "/" + module
            if child not in wanted:
                wanted.add(child)
                todo.append(child)
    assert {"/playground/static/js/main.js", "/playground/static/js/snippets.js",
            "/playground/static/samples/sneaker.png"} <= wanted
    for path in wanted:
        response = await app.client.get(path)
        assert response.status_code == 200 and response.content, path


async def test_no_page_when_turned_off(make_rest_client) -> None:
    app = await make_rest_client(playground=False)
    assert (await app.client.get("/")).status_code == 404
    assert (await app.client.get("/playground/static/playground.css")).status_code == 404
    assert (await app.client.get("/playground/api/stats")).status_code == 404


def test_config_cannot_end_the_script_element() -> None:
    html = render_page((PAGE_DIR / "index.html").read_text(), {"x": "</script><b>"})
    assert "</script><b>" not in html
    assert inlined_config(html) == {"x": "</script><b>"}


async def test_stats_count_what_was_served(make_rest_client) -> None:
    app = await make_rest_client()
    c = app.client
    for _ in range(5):
        assert (await c.post("/v1/digit:predict", json=DIGIT)).status_code == 200
    assert (await c.post("/v1/text:predict", json={"text": "good fun"})).status_code == 200
    assert (await c.post("/v1/digit:predict", json={"inputs": [[1, 2]]})).status_code == 400
    assert (await c.post("/v1/digit:predict?model=nope", json=DIGIT)).status_code == 404
    stats = (await c.get("/playground/api/stats")).json()
    assert stats["window_s"] == 60
    digit = stats["models"]["digit"]
    assert digit["version"] == "1" and len(digit["seconds"]) == 60
    window = digit["window"]
    assert window["requests"] == 6 and window["errors"] == 1
    assert window["p50_ms"] > 0 and window["p99_ms"] >= window["p50_ms"]
    assert sum(window["batch_sizes"].values()) == 5 and window["batch_sizes"].get("1", 0) >= 1
    assert stats["models"]["text"]["window"]["requests"] == 1
    assert stats["models"]["_unknown"]["window"]["errors"] == 1


async def test_model_input_is_the_codecs_own_decode(make_rest_client,
                                                    tiny_model_repository) -> None:
    app = await make_rest_client()
    photo = solid_rgb(200, 30, 60, size=300, fmt="JPEG")
    response = await app.client.post("/playground/api/model-input/image", content=photo,
                                     headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    seen = np.asarray(Image.open(io.BytesIO(response.content)))
    codec = app.dataplane.model("image").codec_as(ImageCodec)
    expected = np.rint(codec.decode(photo) * 255).astype(np.uint8)
    assert seen.shape == (codec.height, codec.width, 3)
    assert np.array_equal(seen, expected)
    # Multipart, as a form would send it, works too.
    multipart = await app.client.post("/playground/api/model-input/image?version=1",
                                      files={"file": ("p.jpg", photo, "image/jpeg")})
    assert multipart.content == response.content


async def test_model_input_refuses_what_it_cannot_show(make_rest_client) -> None:
    c = (await make_rest_client()).client
    png = solid_rgb(1, 2, 3)
    digit = await c.post("/playground/api/model-input/digit", content=png,
                         headers={"content-type": "image/png"})
    assert digit.status_code == 400 and "does not take images" in digit.json()["error"]
    assert (await c.post("/playground/api/model-input/nope", content=png,
                         headers={"content-type": "image/png"})).status_code == 404
    broken = await c.post("/playground/api/model-input/image", content=b"\x89PNG not really",
                          headers={"content-type": "image/png"})
    assert broken.status_code == 400 and "decode" in broken.json()["error"]
    two = await c.post("/playground/api/model-input/image",
                       files=[("file", ("a.png", png, "image/png"))] * 2)
    assert two.status_code == 400


async def test_api_keys_open_the_page_not_the_calls(make_rest_client) -> None:
    app = await make_rest_client(api_keys=["k1"])
    c = app.client
    page = await c.get("/")
    assert page.status_code == 200 and inlined_config(page.text)["api_key_required"] is True
    for path in ("/playground/static/js/main.js", "/docs", "/openapi.json",
                 "/docs/static/swagger-ui.css"):
        assert (await c.get(path)).status_code == 200, path
    assert (await c.get("/playground/api/stats")).status_code == 200  # the live view
    png = solid_rgb(1, 2, 3)
    refused = await c.post("/playground/api/model-input/image", content=png,
                           headers={"content-type": "image/png"})
    assert refused.status_code == 401
    allowed = await c.post("/playground/api/model-input/image", content=png,
                           headers={"content-type": "image/png", "authorization": "Bearer k1"})
    assert allowed.status_code == 200
    assert (await c.post("/v2/repository/index", json={})).status_code == 401
    # A path that only starts like an open one is not open.
    assert (await c.get("/playground/staticx")).status_code == 401


async def test_pages_closed_when_asked(make_rest_client) -> None:
    app = await make_rest_client(api_keys=["k1"], open_pages=False)
    c = app.client
    for path in ("/", "/playground/static/js/main.js", "/docs", "/openapi.json",
                 "/playground/api/stats"):
        assert (await c.get(path)).status_code == 401, path
    assert (await c.get("/", headers={"x-api-key": "k1"})).status_code == 200
