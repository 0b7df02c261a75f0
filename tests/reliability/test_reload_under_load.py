"""Reload under load: while REST and gRPC clients keep sending, models are reloaded in
place through the v2 repository API and new versions appear through polling, 30
times; not one request may fail or get a wrong answer, and readiness never flaps."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from dataclasses import dataclass, field

import grpc
import httpx
import numpy as np
from PIL import Image

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.tiny_models import digit_model, digit_reference, write_model_version
from tests.reliability.conftest import percentile

MAX_REQUESTS_PER_CLIENT = 4000  # every loop is bounded in count and in time
MAX_SECONDS = 50.0


@dataclass
class Tally:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    def record(self, start: float, problem: str | None, version: str = "") -> None:
        self.latencies.append(time.perf_counter() - start)
        if problem:
            self.failures.append(problem)
        else:
            self.ok += 1
            self.versions.add(version)


async def rest_digits(url: str, stop: asyncio.Event, tally: Tally, seed: int) -> None:
    rng = np.random.default_rng(seed)
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            pixels = rng.random((1, 784), dtype=np.float32)
            body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784],
                                "data": pixels.ravel().tolist()}]}
            start = time.perf_counter()
            try:
                resp = await client.post("/v2/models/digit/infer", json=body)
            except httpx.HTTPError as exc:
                tally.record(start, f"rest {type(exc).__name__}")
                continue
            if resp.status_code != 200:
                tally.record(start, f"rest {resp.status_code} {resp.text[:120]}")
                continue
            got = np.asarray(resp.json()["outputs"][0]["data"], np.float32)
            wrong = not np.allclose(got, digit_reference(pixels).ravel(), atol=1e-5)
            tally.record(start, "rest wrong answer" if wrong else None,
                         resp.json()["model_version"])


def noisy_red_png(size: int = 160) -> bytes:
    """Red with noise: > 32 KiB as PNG, so the server decodes it in a worker thread."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    pixels[..., 0] = 200 + pixels[..., 0]
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


async def rest_images(url: str, stop: asyncio.Event, tally: Tally) -> None:
    """Images are decoded in a thread: the widest gap between model lookup and queueing."""
    image = base64.b64encode(noisy_red_png()).decode()
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            start = time.perf_counter()
            try:
                resp = await client.post("/v1/image:predict", json={"image": image})
            except httpx.HTTPError as exc:
                tally.record(start, f"image {type(exc).__name__}")
                continue
            ok = resp.status_code == 200 and resp.json()["predictions"][0]["label"] == "sneaker"
            tally.record(start, None if ok else f"image {resp.status_code} {resp.text[:120]}",
                         resp.json().get("model_version", "") if ok else "")


async def grpc_digits(target: str, stop: asyncio.Event, tally: Tally, seed: int) -> None:
    rng = np.random.default_rng(seed)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            pixels = rng.random((2, 784), dtype=np.float32)
            request = pb.ModelInferRequest(model_name="digit", raw_input_contents=[
                pixels.tobytes()], inputs=[pb.ModelInferRequest.InferInputTensor(
                    name="pixels", datatype="FP32", shape=[2, 784])])
            start = time.perf_counter()
            try:
                resp = await stub.ModelInfer(request, timeout=20)
            except grpc.aio.AioRpcError as exc:
                tally.record(start, f"grpc {exc.code().name} {exc.details()}")
                continue
            got = np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(2, 10)
            wrong = not np.allclose(got, digit_reference(pixels), atol=1e-5)
            tally.record(start, "grpc wrong answer" if wrong else None, resp.model_version)


async def watch_readiness(url: str, stop: asyncio.Event, seen: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            seen.append((await client.get("/v2/health/ready")).status_code)
            await asyncio.sleep(0.02)


async def reload_cycles(server, cycles: int) -> dict[str, list[float]]:
    """Each cycle: in-place reloads of digit and image via the API, then a new digit
    version via polling (waits until it serves). Returns the seconds each kind took."""
    registry = server.process.registry
    took: dict[str, list[float]] = {"api_digit": [], "api_image": [], "poll_new_version": []}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for cycle in range(cycles):
            for name in ("digit", "image"):
                start = time.perf_counter()
                resp = await client.post(f"/v2/repository/models/{name}/load")
                assert resp.status_code == 200, resp.text
                took[f"api_{name}"].append(time.perf_counter() - start)
            version = cycle + 2
            start = time.perf_counter()
            await asyncio.to_thread(write_model_version, server.repository, "digit", version,
                                    digit_model())
            async with asyncio.timeout(10):
                while registry.get("digit").version != version:
                    await asyncio.sleep(0.01)
            took["poll_new_version"].append(time.perf_counter() - start)
    return took


async def test_reload_30_times_under_load_loses_no_request(make_server, report) -> None:
    server = await make_server(repository_poll_s=0.05, warmup_batch_sizes=[1, 8])
    stop = asyncio.Event()
    tally, ready_codes = Tally(), []
    clients = [asyncio.create_task(rest_digits(server.url, stop, tally, seed))
               for seed in range(3)]
    clients += [asyncio.create_task(grpc_digits(server.grpc_target, stop, tally, seed))
                for seed in range(2)]
    clients += [asyncio.create_task(rest_images(server.url, stop, tally)),
                asyncio.create_task(watch_readiness(server.url, stop, ready_codes))]
    started = time.perf_counter()
    try:
        await asyncio.sleep(0.3)  # the load is running before the first reload
        async with asyncio.timeout(MAX_SECONDS):
            took = await reload_cycles(server, cycles=10)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    elapsed = time.perf_counter() - started
    reloads = sum(len(v) for v in took.values())
    states = {f"{m.name}/{m.version}": m.state for m in server.process.registry.models()}
    report("tried", reloads=reloads, api_in_place=len(took["api_digit"]) + len(
        took["api_image"]), new_versions_by_polling=len(took["poll_new_version"]),
        clients="3 REST v2 digit + 2 gRPC v2 digit + 1 REST image", seconds=elapsed)
    report("happened", requests=tally.ok + len(tally.failures), failed=len(tally.failures),
           first_failures=tally.failures[:3], versions_answering=sorted(tally.versions, key=int),
           p50_ms=percentile(tally.latencies, 50) * 1000,
           p99_ms=percentile(tally.latencies, 99) * 1000,
           readiness_samples=len(ready_codes), readiness_not_200=sum(
               c != 200 for c in ready_codes))
    report("reload seconds", **{k: max(v) for k, v in took.items()})
    assert reloads == 30 and tally.ok > 200
    assert tally.failures == []
    assert set(ready_codes) == {200}
    assert states["digit/11"] == "AVAILABLE"
    assert all(states[f"digit/{v}"] == "END" for v in range(1, 11))
