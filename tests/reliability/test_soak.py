"""Soak: a steady mixed load (REST task + v2, gRPC v2) on the real process for a bounded
time, with the server's RSS sampled. CI runs 1 minute (``slow``); ``make test-heavy``
runs 10 minutes (``heavy``); MODELSERVE_SOAK_S overrides both. Zero failed requests,
and RSS growth after warm-up must stay below RSS_GROWTH_LIMIT_MB."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import grpc
import httpx
import numpy as np
import psutil
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.servers import free_port, wait_ready
from tests.integration.rest.images import solid_rgb

RSS_GROWTH_LIMIT_MB = 25.0  # after warm-up; a leak of ~1 KB per request would exceed it
WARMUP_FRACTION = 0.2


async def rest_mix(url: str, until: float, tally: Counter[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = solid_rgb(200, 10, 10, size=120)
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        for i in range(10_000_000):
            if time.monotonic() >= until:
                return
            kind = i % 3
            if kind == 0:
                resp = await client.post("/v1/text:predict", json={"text": f"good movie {i}"})
            elif kind == 1:
                resp = await client.post("/v1/image:predict", content=image,
                                         headers={"content-type": "image/png"})
            else:
                resp = await client.post("/v2/models/digit/infer", json={"inputs": [{
                    "name": "pixels", "datatype": "FP32", "shape": [1, 784],
                    "data": rng.random(784).round(3).tolist()}]})
            tally[f"rest {resp.status_code}"] += 1


async def grpc_mix(target: str, until: float, tally: Counter[str]) -> None:
    pixels = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    request = pb.ModelInferRequest(model_name="digit", raw_input_contents=[pixels.tobytes()],
                                   inputs=[pb.ModelInferRequest.InferInputTensor(
                                       name="pixels", datatype="FP32", shape=[8, 784])])
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(10_000_000):
            if time.monotonic() >= until:
                return
            try:
                await stub.ModelInfer(request, timeout=20)
                tally["grpc OK"] += 1
            except grpc.aio.AioRpcError as exc:
                tally[f"grpc {exc.code().name}"] += 1


async def sample_rss(proc: psutil.Process, until: float, samples: list[tuple[float, float]],
                     start: float) -> None:
    while time.monotonic() < until:
        samples.append((time.monotonic() - start, proc.memory_info().rss / 2**20))
        await asyncio.sleep(max(0.5, (until - start) / 40))


async def soak(start_server_process, repository, report, seconds: float) -> None:
    grpc_port = free_port()
    server = start_server_process(repository, "--grpc-port", str(grpc_port),
                                  "--drain-seconds", "0")
    await wait_ready(server.url, timeout_s=60)
    proc = psutil.Process(server.proc.pid)
    tally: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(*(rest_mix(server.url, until, tally, s) for s in range(3)),
                         grpc_mix(f"127.0.0.1:{grpc_port}", until, tally),
                         sample_rss(proc, until, samples, start))
    elapsed = time.monotonic() - start
    warm = [rss for t, rss in samples if t >= seconds * WARMUP_FRACTION]
    growth = warm[-1] - warm[0]
    report("tried", seconds=round(elapsed, 1), clients="3 REST (text, image, v2 digit) + "
           "1 gRPC v2 digit batch 8", rss_limit_mb=RSS_GROWTH_LIMIT_MB)
    report("happened", requests=sum(tally.values()), rps=sum(tally.values()) / elapsed,
           outcomes=dict(tally), rss_start_mb=samples[0][1], rss_after_warmup_mb=warm[0],
           rss_end_mb=warm[-1], rss_max_mb=max(r for _, r in samples), growth_mb=growth)
    report("rss samples (s, MB)", samples=[(round(t), round(r, 1)) for t, r in samples])
    assert set(tally) == {"rest 200", "grpc OK"}, tally  # every client got answers, all OK
    assert sum(tally.values()) > elapsed  # well over one a second (hundreds, in practice)
    assert growth < RSS_GROWTH_LIMIT_MB


@pytest.mark.slow
async def test_soak_one_minute(start_server_process, tiny_model_repository, report) -> None:
    seconds = float(os.environ.get("MODELSERVE_SOAK_S", "60"))
    await soak(start_server_process, tiny_model_repository, report, seconds)


@pytest.mark.heavy
async def test_soak_ten_minutes(start_server_process, tiny_model_repository, report) -> None:
    seconds = float(os.environ.get("MODELSERVE_SOAK_S", "600"))
    await soak(start_server_process, tiny_model_repository, report, seconds)
