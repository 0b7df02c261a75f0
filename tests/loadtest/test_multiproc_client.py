"""The multi-process load client against a real server process on 127.0.0.1."""

from __future__ import annotations

import json

from loadtest.bodies import Body
from loadtest.http_client import encode_request
from loadtest.multiproc_client import run_processes
from tests.fixtures.servers import wait_ready


def _requests(port: int, path: str) -> list[bytes]:
    body = Body(path, "application/json", json.dumps({"input": [0] * 784}).encode())
    return [encode_request(f"127.0.0.1:{port}", body)]


async def test_processes_share_the_connections_and_merge_their_figures(
        start_server_process, tiny_model_repository) -> None:
    server = start_server_process(tiny_model_repository, "--grpc-port", "-1")
    await wait_ready(server.url, timeout_s=60)
    port = int(server.url.rsplit(":", 1)[1])
    run = run_processes(port, _requests(port, "/v1/digit:predict"), concurrency=4,
                        duration_s=0.5, processes=2, warmup_s=0.2)
    assert run.processes == 2
    assert run.measurement.errors == 0, run.measurement.error_samples
    assert len(run.measurement.latencies_ns) >= 4
    assert run.client_cores > 0
    assert b"predictions" in run.measurement.first_body
    # Fewer connections than processes: one process per connection, no idle process.
    lone = run_processes(port, _requests(port, "/v1/nothing:predict"), concurrency=1,
                         duration_s=0.3, processes=4, warmup_s=0.1)
    assert lone.processes == 1
    assert lone.measurement.errors > 0 and not lone.measurement.latencies_ns
    assert "HTTP 404" in lone.measurement.error_samples[0]
