"""Start the real modelserve server (or any ASGI app under uvicorn) as a child process.

Used by `modelserve loadtest`, `modelserve bench` and the CI smoke test: free ports on
127.0.0.1, optional CPU pinning (os.sched_setaffinity in the child, so the load
generator and the server do not fight for one core), time from spawn to ready, RSS,
and CPU seconds used, and a bounded SIGTERM-then-kill stop.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_cpus(text: str | None) -> set[int] | None:
    """"1" / "0,1" / "0-3" → a CPU set; None or "" → no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        raise ValueError(f"CPUs {sorted(cpus - available)} are not available "
                         f"(this process may use {sorted(available)})")
    return cpus


def pin_current(cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def grpc_ready(target: str) -> Callable[[], bool]:
    """A readiness check for a gRPC server: its channel connects within a second."""
    def check() -> bool:
        import grpc

        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
            except grpc.FutureTimeoutError:
                return False
        return True
    return check


class ChildProcess:
    """A server child process: start, wait until a URL answers 200, measure, stop."""

    def __init__(self, argv: Sequence[str], *, ready_url: str = "",
                 ready_check: Callable[[], bool] | None = None,
                 env: dict[str, str] | None = None, cpus: set[int] | None = None,
                 log_path: Path | None = None) -> None:
        self.argv = list(argv)
        self.ready_url = ready_url
        self.ready_check = ready_check or (lambda: _answers_200(ready_url))
        self.env = {**os.environ, **(env or {})}
        self.cpus = cpus
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self._started = 0.0

    def start(self, timeout_s: float = 60.0) -> ChildProcess:
        out = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        cpus = self.cpus
        self._started = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=(lambda: pin_current(cpus)) if cpus else None)
        self._wait_ready(timeout_s)
        self.startup_s = time.perf_counter() - self._started
        log.info("%s ready in %.2f s (pid %d)", self.argv[2:4], self.startup_s, self.proc.pid)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode} before "
                                   f"ready; see {self.log_path or 'its output'}")
            if self.ready_check():
                return
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"{self.argv[1:4]} not ready within {timeout_s:.0f} s")

    def _process(self):  # psutil.Process of the server (psutil comes with locust)
        import psutil

        return psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (worker processes), MB."""
        import psutil

        proc = self._process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 1e6

    def cpu_seconds(self) -> float:
        times = self._process().cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop within %.0f s; killing it", timeout_s)
            self.proc.kill()
            return self.proc.wait(5)

    def __enter__(self) -> ChildProcess:
        return self if self.proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def modelserve_server(repository: Path, http_port: int, grpc_port: int, *,
                      cpus: set[int] | None = None, log_path: Path | None = None,
                      env: dict[str, str] | None = None) -> ChildProcess:
    """The real server, `modelserve serve`, on 127.0.0.1 (not started yet)."""
    argv = [sys.executable, "-m", "serving.cli", "serve", "--model-repository", str(repository),
            "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    server_env = {"MODELSERVE_HOST": "127.0.0.1", **(env or {})}
    return ChildProcess(argv, ready_url=f"http://127.0.0.1:{http_port}/v2/health/ready",
                        env=server_env, cpus=cpus, log_path=log_path)
