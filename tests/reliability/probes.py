"""Measuring a server from outside its event loop: health latency and memory."""

from __future__ import annotations

import threading
import time

import httpx
import psutil


class HealthProbe:
    """GET /v2/health/live every ``every_s`` from a thread of its own, on one kept-alive
    connection: unlike a coroutine in an in-process server's loop, it keeps measuring
    while that loop is blocked. ``latencies`` in seconds; a failed check counts as
    ``failures`` (and its time as a latency)."""

    def __init__(self, url: str, every_s: float = 0.005) -> None:
        self.url, self.every_s = url, every_s
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get("/v2/health/live").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - start)
                self.failures += not ok
                self._stop.wait(self.every_s)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class RssSampler:
    """The resident memory of process ``pid`` every ``every_s``, from a thread (MB)."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.rss_mb())
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]
