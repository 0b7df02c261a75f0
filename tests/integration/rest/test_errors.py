"""Bad input of every kind gets a clear 4xx; the server keeps serving after each.

Every test runs on both lanes (tests/fixtures/rest_lanes.py): a real server, whose HTTP
protocol answers the task routes itself as in production, and the in-process ASGI lane."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from tests.fixtures.tiny_models import image_reference
from tests.integration.rest.images import solid_rgb


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size (a decompression bomb's header), with tiny data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def ico_bytes() -> bytes:
    """A Windows icon: a real image format Pillow reads, which the server does not accept."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="ICO")
    return buf.getvalue()


BAD_REQUESTS = [
    ("malformed json", "/v1/digit:predict", {"content": b'{"inputs": [1,',
                                             "headers": {"content-type": "application/json"}},
     400, "malformed JSON"),
    ("json not object", "/v1/text:predict", {"json": ["good"]}, 400, "JSON"),
    ("wrong shape", "/v1/digit:predict", {"json": {"inputs": [[0.1] * 10]}}, 400, "784"),
    ("nan", "/v1/digit:predict", {"content": b'{"inputs": [[NaN]]}',
                                  "headers": {"content-type": "application/json"}}, 400, "JSON"),
    ("inf value", "/v1/models/digit:predict", {"json": {"instances": [[1e39] * 784]}},
     400, "NaN or infinity"),
    ("undecodable image", "/v1/image:predict",
     {"content": b"not an image", "headers": {"content-type": "image/png"}}, 400, "decode"),
    ("truncated image", "/v1/image:predict",
     {"content": solid_rgb(9, 9, 9, fmt="JPEG")[:200], "headers": {"content-type": "image/jpeg"}},
     400, "image"),
    ("decompression bomb", "/v1/image:predict",
     {"content": png_header_only(100_000, 100_000), "headers": {"content-type": "image/png"}},
     400, "exceeds"),
    ("unsupported format", "/v1/image:predict",
     {"content": ico_bytes(), "headers": {"content-type": "image/x-icon"}}, 415, "format"),
    ("bad base64", "/v1/image:predict", {"json": {"image": "%%%"}}, 400, "base64"),
    ("empty text", "/v1/text:predict", {"json": {"text": "   "}}, 400, "empty"),
    ("no texts", "/v1/text:predict", {"json": {"texts": []}}, 400, "no text"),
    ("text not string", "/v1/text:predict", {"json": {"texts": [3]}}, 400, "string"),
    ("unknown model", "/v2/models/nope/infer", {"json": {"inputs": []}}, 404, "nope"),
    ("unknown version", "/v1/models/digit/versions/7:predict",
     {"json": {"instances": [[0] * 784]}}, 404, "version 7"),
    ("batch over limit", "/v1/digit:predict", {"json": {"inputs": [[0.0] * 784] * 40}},
     400, "32"),
    ("bad top_k", "/v1/digit:predict?top_k=0", {"json": {"input": [0.0] * 784}}, 400, "top_k"),
    ("unsupported content type", "/v1/text:predict",
     {"content": b"x", "headers": {"content-type": "application/xml"}}, 415, "content type"),
    ("empty body", "/v1/models/digit:predict", {"content": b""}, 400, "empty"),
    ("unknown route", "/v9/nothing", {"json": {}}, 404, "Not Found"),
]


@pytest.mark.parametrize(("case", "path", "kwargs", "status", "message"), BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
async def test_bad_input_is_a_clear_4xx_and_server_keeps_serving(
        lane, case: str, path: str, kwargs: dict, status: int, message: str) -> None:
    c = lane
    resp = await c.post(path, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert list(resp.json()) == ["error"]
    assert message.lower() in resp.json()["error"].lower()
    ok = await c.post("/v1/digit:predict", json={"input": [0.0] * 784})
    assert ok.status_code == 200


async def test_bad_item_fails_only_its_request(lane) -> None:
    c = lane
    good = [c.post("/v1/image:predict", content=solid_rgb(200, 0, 0),
                   headers={"content-type": "image/png"}) for _ in range(8)]
    bad = c.post("/v1/image:predict", content=b"\x89PNG broken",
                 headers={"content-type": "image/png"})
    answers = await asyncio.gather(*good, bad)
    assert [r.status_code for r in answers] == [200] * 8 + [400]
    assert [r.json()["predictions"][0]["probability"] for r in answers[:8]] == [
        pytest.approx(image_reference(200, 0, 0), rel=1e-5)] * 8


async def test_body_size_limit_on_content_length_and_stream(make_lane) -> None:
    c = (await make_lane(max_request_bytes=4096)).client
    big = {"inputs": [[0.123456] * 784]}
    declared = await c.post("/v1/digit:predict", json=big)
    assert declared.status_code == 413 and "4096" in declared.json()["error"]

    async def chunks():
        for _ in range(10):
            yield b" " * 1000
    streamed = await c.post("/v1/digit:predict", content=chunks(),
                            headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "4096" in streamed.json()["error"]
    assert (await c.post("/v1/digit:predict", json={"input": [0] * 784})).status_code == 200


async def test_api_keys(make_lane, tmp_path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# comment\nfile-key\n")
    c = (await make_lane(api_keys=["k1"], api_keys_file=keys_file)).client
    body = {"input": [0.0] * 784}
    refused = await c.post("/v1/digit:predict", json=body)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"error": "missing or invalid API key"}
    assert (await c.post("/v1/digit:predict", json=body,
                         headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await c.post("/v1/digit:predict", json=body,
                         headers={"Authorization": "Bearer k1"})).status_code == 200
    assert (await c.post("/v1/digit:predict", json=body,
                         headers={"X-API-Key": "file-key"})).status_code == 200
    assert (await c.get("/v2/health/ready")).status_code == 200
    assert (await c.get("/metrics")).status_code == 200
    assert (await c.get("/v2/models/digit")).status_code == 401


async def test_health_closed_when_asked(make_lane) -> None:
    c = (await make_lane(api_keys=["k1"], open_health_and_metrics=False)).client
    assert (await c.get("/v2/health/live")).status_code == 401
    assert (await c.get("/v2/health/live", headers={"X-API-Key": "k1"})).status_code == 200


async def test_cors_off_by_default_and_on_when_configured(make_lane) -> None:
    headers = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    off = (await make_lane()).client
    on = (await make_lane(cors_origins=["http://app.example"], api_keys=["k"])).client
    plain = await off.options("/v1/digit:predict", headers=headers)
    assert "access-control-allow-origin" not in plain.headers
    allowed = await on.options("/v1/digit:predict", headers=headers)
    assert allowed.status_code == 200  # a preflight carries no API key and needs none
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"


async def test_overload_is_503_with_retry_after(make_lane, hold_model_busy) -> None:
    # The model runs in its executor (not inline), so hold_model_busy can block it.
    lane = await make_lane(max_queue_size=1, max_batch_size=1, inline_batch_max_ms=0.0)
    c = lane.client
    served = lane.dataplane.model("image")
    busy = hold_model_busy(served)
    body = {"image": base64.b64encode(solid_rgb(1, 2, 3)).decode()}
    running = asyncio.create_task(c.post("/v1/image:predict", json=body))
    async with asyncio.timeout(5):  # taken by the batcher, waiting behind the busy model
        while not served.batcher.in_flight:
            await asyncio.sleep(0.005)
    queued = asyncio.create_task(c.post("/v1/image:predict", json=body))
    await busy.wait_queued(1)  # the queue (one row) is full now
    rejected = await c.post("/v1/image:predict", json=body)
    busy.release()
    answers = [await running, await queued]
    assert rejected.status_code == 503, rejected.text
    assert rejected.headers["retry-after"] == "1"
    assert "queue" in rejected.json()["error"].lower()
    assert [r.status_code for r in answers] == [200, 200]


async def test_image_pixel_limit_is_a_setting(make_lane) -> None:
    c = (await make_lane(max_image_pixels=1000)).client
    resp = await c.post("/v1/image:predict", content=solid_rgb(1, 1, 1, size=64),
                                 headers={"content-type": "image/png"})
    assert resp.status_code == 400 and "1000 pixels" in resp.json()["error"]
