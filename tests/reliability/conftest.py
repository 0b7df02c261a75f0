"""Fixtures for the reliability tests: a real server in the test's loop, and a figures report.

``make_server(**settings)`` starts ServerProcess (uvicorn + grpc.aio, background
loading, the repository poller) on free 127.0.0.1 ports over a fresh tiny-model
repository; ``report`` prints what a test tried and what happened (``pytest -s``
shows it live) and writes it to ``figures.txt`` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.servers import bound_socket, free_port, server_settings, wait_ready
from tests.reliability.probes import percentile

__all__ = ["percentile"]  # the reliability tests' shared helper, kept importable from here


@dataclass
class RunningServer:
    url: str
    grpc_target: str
    process: Any  # serving.server.ServerProcess
    repository: Path


@pytest.fixture
async def make_server(tiny_model_repository: Path) -> AsyncIterator[Callable[..., Any]]:
    from serving.server import ServerProcess

    started: list[tuple[ServerProcess, asyncio.Task[int], Any]] = []

    async def start(repository: Path | None = None, **overrides: Any) -> RunningServer:
        repository = repository or tiny_model_repository
        sock = bound_socket()
        port = sock.getsockname()[1]
        settings = server_settings(repository, **({"http_port": port, "grpc_port": free_port()}
                                                  | overrides))
        server = ServerProcess(settings, sockets=[sock])
        task = asyncio.create_task(server.run(install_signal_handlers=False))
        started.append((server, task, sock))
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url)
        grpc_port = server.grpc.port if server.grpc is not None else -1
        return RunningServer(url, f"127.0.0.1:{grpc_port}", server, repository)

    yield start
    for server, task, sock in started:
        server.request_stop()
        await asyncio.wait_for(task, timeout=30)
        sock.close()


class Report:
    """Lines of figures: printed at once and kept in a file next to the test's data."""

    def __init__(self, path: Path, title: str) -> None:
        self.path = path
        self.lines = [f"== {title}"]
        print(f"\n== {title}")

    def __call__(self, what: str, **figures: Any) -> None:
        text = f"{what}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        self.lines.append(text)
        print(text)
        self.path.write_text("\n".join(self.lines) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


@pytest.fixture
def report(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Report]:
    yield Report(tmp_path / "figures.txt", request.node.name)

