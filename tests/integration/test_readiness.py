"""Readiness tells the truth, through every door the probes and balancers use.

A real server (uvicorn + grpc.aio, ServerProcess) on 127.0.0.1: REST /v2/health/ready,
gRPC ServerReady and grpc.health.v1 (Check and Watch, service "") agree, are false
while a model the server is configured to serve has no available version (failed to
load, unloaded on request), and never drop while models are reloaded in place or
replaced by new versions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.servers import bound_socket, free_port, server_settings
from tests.fixtures.tiny_models import digit_model, write_model_version

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_SAMPLES = 200_000  # the readiness sampler's bound (it stops earlier when told)


@dataclass
class Running:
    url: str
    grpc_target: str
    process: Any  # serving.server.ServerProcess


@pytest.fixture
async def start_server(tiny_model_repository: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await start_server(repository=None, **settings)``: returns once the models loaded
    (whatever readiness says, which is what these tests look at)."""
    from serving.server import ServerProcess

    started: list[tuple[Any, asyncio.Task[int], Any]] = []

    async def start(repository: Path | None = None, **overrides: Any) -> Running:
        sock = bound_socket()
        port = sock.getsockname()[1]
        settings = server_settings(repository or tiny_model_repository, http_port=port,
                                   grpc_port=free_port(), **overrides)
        server = ServerProcess(settings, sockets=[sock])
        task = asyncio.create_task(server.run(install_signal_handlers=False))
        started.append((server, task, sock))
        async with asyncio.timeout(30):
            while not (server.registry.ready and server.http.started):
                await asyncio.sleep(0.02)
        return Running(f"http://127.0.0.1:{port}", f"127.0.0.1:{server.grpc.port}", server)

    yield start
    for server, task, sock in started:
        server.request_stop()
        await asyncio.wait_for(task, timeout=30)
        sock.close()


async def readiness(server: Running) -> tuple[int, bool, int]:
    """(REST /v2/health/ready status, gRPC ServerReady, grpc.health.v1 Check status)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        rest = (await client.get("/v2/health/ready")).status_code
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        ready = await pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(
            pb.ServerReadyRequest(), timeout=5)
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5)
    return rest, ready.ready, health.status


@pytest.mark.parametrize("strict", [True, False])
async def test_a_model_that_failed_to_load_keeps_the_server_out_of_rotation(
        start_server, tiny_model_repository: Path, strict: bool) -> None:
    write_model_version(tiny_model_repository, "broken", 1, digit_model(), sha256="0" * 64)
    server = await start_server(strict_readiness=strict)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        answer = await client.post("/v1/digit:predict", json={"inputs": [[0.0] * 784]})
    assert answer.status_code == 200  # the other models serve; only rotation changes
    expected = (503, False, NOT_SERVING) if strict else (200, True, SERVING)
    assert await readiness(server) == expected


async def test_unload_takes_the_server_out_of_rotation_until_loaded_again(start_server) -> None:
    server = await start_server(repository_api=True)
    assert await readiness(server) == (200, True, SERVING)
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert (await watch.read()).status == SERVING
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="text"))
        assert await readiness(server) == (503, False, NOT_SERVING)
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            loaded = await client.post("/v2/repository/models/text/load")
        assert loaded.status_code == 200, loaded.text
        assert await readiness(server) == (200, True, SERVING)
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        watch.cancel()


async def test_reloads_and_new_versions_never_drop_readiness(
        start_server, tiny_model_repository: Path) -> None:
    """Readiness is read at every turn of the event loop while digit and image are reloaded
    in place over the API and new digit versions arrive by polling: each state the
    registry passes through is seen, and not one of them is not-ready."""
    server = await start_server(repository_api=True, repository_poll_s=0.05,
                                warmup_batch_sizes=[1, 8])
    registry, dataplane = server.process.registry, server.process.dataplane
    stop, samples = asyncio.Event(), []

    async def sample() -> None:
        while not stop.is_set() and len(samples) < MAX_SAMPLES:
            samples.append(dataplane.ready())
            await asyncio.sleep(0)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client, \
                asyncio.timeout(60):
            for version in (2, 3, 4):
                for name in ("digit", "image"):
                    resp = await client.post(f"/v2/repository/models/{name}/load")
                    assert resp.status_code == 200, resp.text
                await asyncio.to_thread(write_model_version, tiny_model_repository, "digit",
                                        version, digit_model())
                while registry.get("digit").version != version:
                    await asyncio.sleep(0.01)
    finally:
        stop.set()
        await sampler
    states = {f"{m.name}/{m.version}": m.state for m in registry.models()}
    assert states["digit/4"] == "AVAILABLE" and states["digit/1"] == "END"
    assert len(samples) > 100, (len(samples), time.perf_counter() - started)
    assert all(samples), f"{samples.count(False)} of {len(samples)} samples not ready"
    assert await readiness(server) == (200, True, SERVING)
