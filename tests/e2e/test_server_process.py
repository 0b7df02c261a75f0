"""The real server process (``python -m serving``): start, predict, SIGTERM drain, workers."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fixtures.servers import wait_ready
from tests.fixtures.tiny_models import digit_reference
from tests.integration.rest.images import solid_rgb


def _count(metrics: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(pattern + r" ([0-9.e+]+)", metrics))


async def test_start_predict_and_drain_on_sigterm(start_server_process,
                                                  tiny_model_repository) -> None:
    server = start_server_process(tiny_model_repository, "--grpc-port", "-1",
                                  "--drain-seconds", "1.5", "--shutdown-timeout-s", "10")
    await wait_ready(server.url, timeout_s=60)
    image = solid_rgb(200, 10, 10, size=300)
    results: list[int] = []
    stop_sending = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        first = await client.post("/v1/digit:predict", json={"input": [0] * 784})
        assert first.status_code == 200, first.text
        # All pixels 0: the tiny digit model's bias decides.
        zeros = digit_reference(np.zeros((1, 784), np.float32))[0]
        assert first.json()["predictions"][0]["label"] == str(int(np.argmax(zeros)))

        async def load(worker: int) -> None:
            # Bounded: stops when told (a load balancer noticing readiness) or after 200 calls.
            for _ in range(200):
                if stop_sending.is_set():
                    return
                files = [("file", ("i.png", image, "image/png"))] * (8 if worker == 0 else 1)
                resp = await client.post("/v1/image:predict", files=files)
                results.append(resp.status_code)

        workers = [asyncio.create_task(load(w)) for w in range(6)]
        await asyncio.sleep(0.5)
        sent_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        ready = await client.get("/v2/health/ready")
        live = await client.get("/v2/health/live")
        await asyncio.sleep(0.6)  # still inside drain_seconds: requests keep being served
        stop_sending.set()
        await asyncio.gather(*workers)
    code = await asyncio.to_thread(server.proc.wait, 15)
    assert ready.status_code == 503 and live.status_code == 200
    assert code == 0, server.output()
    assert time.monotonic() - sent_at < 10
    assert results and set(results) == {200}, results
    assert "draining" in server.output()


def _requests_by_worker(metrics_dir: Path) -> dict[str, float]:
    """Each worker's own count of digit requests, read from its multiprocess file."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[path.stem.split("_", 1)[1]] = sum(
            value for key, value, *_ in values
            if '"modelserve_requests' in key and '"digit"' in key and key.endswith("]")
            and "_created" not in key)
    return counts


@pytest.mark.slow
async def test_two_workers_share_the_port_and_metrics(start_server_process, tiny_model_repository,
                                                      tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = start_server_process(tiny_model_repository, "--grpc-port", "-1", "--workers", "2",
                                  "--drain-seconds", "0",
                                  env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    await wait_ready(server.url, timeout_s=60)
    sent = 0
    deadline = time.monotonic() + 60
    # New connections until both workers have served some (bounded in count and time).
    while sent < 400 and time.monotonic() < deadline:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as fresh:
            resp = await fresh.post("/v1/digit:predict", json={"input": [0] * 784})
            assert resp.status_code == 200, resp.text
        sent += 1
        per_worker = _requests_by_worker(metrics_dir)
        if sent >= 20 and len([v for v in per_worker.values() if v > 0]) == 2:
            break
    assert len([v for v in per_worker.values() if v > 0]) == 2, per_worker
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        text = (await client.get("/metrics")).text
    counted = _count(text, r'modelserve_requests_total\{model="digit",protocol="rest",'
                           r'status="OK",version="1"\}')
    assert counted == sent == sum(per_worker.values())
    assert _count(text, r'modelserve_model_loaded\{model="digit",version="1"\}') == 1
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 20) == 0, server.output()


@pytest.mark.parametrize("taken", ["rest", "grpc"])
def test_a_taken_port_fails_at_once_with_one_clear_line(start_server_process,
                                                        tiny_model_repository, taken) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        flags = ["--grpc-port", str(port)] if taken == "grpc" else ["--grpc-port", "-1"]
        server = start_server_process(tiny_model_repository, *flags)
        if taken == "rest":  # the fixture picked a free REST port: ask for the taken one
            server.proc.kill()
            server.proc.wait(5)
            server = start_server_process(tiny_model_repository, "--grpc-port", "-1",
                                          "--http-port", str(port))
        code = server.proc.wait(timeout=60)
    output = server.output()
    assert code == 2, output
    assert f"cannot {'listen on' if taken == 'rest' else 'serve gRPC on'} 127.0.0.1:{port}" \
        in output
    assert "Traceback" not in output and "Task was destroyed" not in output
