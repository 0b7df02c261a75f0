"""Measuring a server from outside its event loop: health latency and memory."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import httpx
import psutil


class HealthProbe:
    """GET /v2/health/live every ``every_s`` on one kept-alive connection, from a process
    of its own: neither a blocked server loop nor the load generator's own work (its
    threads, Hypothesis drawing requests) holds it up, so what it measures is the
    server's answer time. ``latencies`` in seconds; failed checks count in ``failures``
    (and their time as a latency)."""

    def __init__(self, url: str, every_s: float = 0.005) -> None:
        self.url, self.every_s = url, every_s
        self.latencies: list[float] = []
        self.times: list[float] = []  # when each check started (time.time())
        self.failures = 0
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results: Any = context.Queue()
        self._process = context.Process(target=_probe, daemon=True,
                                        args=(url, every_s, self._stop, self._results))

    def __enter__(self) -> HealthProbe:
        self._process.start()
        self._results.get(timeout=60)  # the probe's first answer: it is measuring
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.latencies, self.times, self.failures = self._results.get(timeout=60)
        self._process.join(timeout=60)

    # For a server in this process's event loop: wait without blocking that loop.
    async def __aenter__(self) -> HealthProbe:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.__exit__)


def _probe(url: str, every_s: float, stop: Any, results: Any) -> None:
    latencies: list[float] = []
    times: list[float] = []
    failures = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/v2/health/live")
        results.put(True)
        while not stop.is_set():
            times.append(time.time())
            start = time.perf_counter()
            try:
                ok = client.get("/v2/health/live").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            failures += not ok
            stop.wait(every_s)
    results.put((latencies, times, failures))


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
