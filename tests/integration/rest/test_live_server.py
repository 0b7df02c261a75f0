"""A real uvicorn server on 127.0.0.1: concurrency (TF Serving and v2 routes), docs, metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np

from tests.fixtures.tiny_models import digit_reference


async def test_each_response_matches_its_request_under_load(live_server: str) -> None:
    rng = np.random.default_rng(7)
    pixels = rng.random((200, 784), dtype=np.float32)
    expected = digit_reference(pixels)
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=live_server, limits=limits, timeout=30) as client:
        async def one(i: int) -> tuple[int, list[float]]:
            if i % 2:
                resp = await client.post("/v1/models/digit:predict",
                                         json={"instances": [pixels[i].tolist()]})
                return i, resp.json()["predictions"][0]
            resp = await client.post("/v2/models/digit/infer", json={"inputs": [
                {"name": "pixels", "shape": [1, 784], "datatype": "FP32",
                 "data": pixels[i].tolist()}]})
            return i, resp.json()["outputs"][0]["data"]
        results = await asyncio.gather(*(one(i) for i in range(len(pixels))))
    for i, probs in results:
        np.testing.assert_allclose(probs, expected[i], rtol=1e-5, err_msg=f"request {i}")


async def test_metrics_count_requests_and_batches(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        for _ in range(3):
            await client.post("/v1/text:predict", json={"text": "good"})
        await client.post("/v1/text:predict", json={"text": ""})
        text = (await client.get("/metrics")).text
    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)", text)
        assert match, pattern
        return float(match.group(1))
    assert value(r'modelserve_requests_total\{model="text",protocol="rest",status="OK",'
                 r'version="1"\}') == 3
    assert value(r'modelserve_requests_total\{model="text",protocol="rest",'
                 r'status="INVALID_ARGUMENT",version="1"\}') == 1
    assert value(r'modelserve_batch_size_count\{model="text",version="1"\}') >= 1
    assert value(r'modelserve_model_loaded\{model="digit",version="1"\}') == 1
    for name in ("request_duration_seconds_bucket", "queue_duration_seconds_bucket",
                 "compute_duration_seconds_bucket", "queue_depth"):
        assert f"modelserve_{name}" in text


async def test_unknown_model_names_share_one_metrics_label(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        for i in range(5):
            resp = await client.post(f"/v1/text:predict?model=nosuch{i}", json={"text": "ok"})
            assert resp.status_code == 404
        text = (await client.get("/metrics")).text
    assert "nosuch" not in text  # a client cannot mint a series per made-up name
    assert re.search(r'modelserve_requests_total\{model="_unknown",protocol="rest",'
                     r'status="NOT_FOUND",version=""\} 5', text), text[:2000]


async def test_docs_work_offline(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        page = (await client.get("/docs")).text
        schema = (await client.get("/openapi.json")).json()
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/") for a in assets), assets
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
    assert "http://" not in page and "https://" not in page
    assert "/v1/digit:predict" in schema["paths"]
    assert "/v2/models/{name}/infer" in schema["paths"]
