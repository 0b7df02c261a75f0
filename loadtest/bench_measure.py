"""One benchmark measurement: a closed loop against one server, and what it cost.

A ``Sample`` is one run of the client: latencies inside its window, errors, and the
CPU the client (this process) and the server process used per wall second. A ``Row``
is the table line made from one or more samples of the same point (model, protocol,
payload, concurrency): items/s averaged over the samples (each of them kept, so that
per-round ratios can be read), latencies pooled.

The client says when it was the bottleneck: a client that used nearly all of its
CPUs measured itself, not the server, and its row is flagged ``client_bound``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import statistics
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest import http_client
from loadtest.bodies import Body, check_answer
from loadtest.server_process import ChildProcess

log = logging.getLogger(__name__)
# Share of its CPUs past which the client, not the server, set the pace.
CLIENT_BOUND_SHARE = 0.9


@dataclass
class Sample:
    measurement: http_client.Measurement
    wall_s: float
    client_cores: float
    server_cores: float


@dataclass
class Row:
    model: str
    protocol: str
    concurrency: int
    items_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    client_cores: float
    server_cores: float
    error_sample: str = ""
    payload: str = ""
    rounds: list[float] = field(default_factory=list)  # items/s of each sample
    client_bound: bool = False
    # Server CPU per answered item: what the request costs whatever the machine's load
    # (throughput on a shared machine also measures how often the server got a CPU).
    server_us_per_item: float = float("nan")

    @property
    def key(self) -> tuple[str, str, str, int]:
        return self.model, self.protocol, self.payload, self.concurrency


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def client_cpus() -> int:
    return len(os.sched_getaffinity(0))


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # uvloop is not on every platform
        return asyncio.run(coro)
    return uvloop.run(coro)


def sample(coro: Coroutine[Any, Any, http_client.Measurement], server: ChildProcess) -> Sample:
    """Run one closed loop; the CPU of the client (this process) and of the server."""
    cpu0, server0 = resource.getrusage(resource.RUSAGE_SELF), server.cpu_seconds()
    wall0 = time.perf_counter()
    result: http_client.Measurement = run_async(coro)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return Sample(result, wall, client_cpu / wall, (server.cpu_seconds() - server0) / wall)


def row(label: tuple[str, str, str, int], samples: Sequence[Sample]) -> Row:
    """The table line of one point from its samples (rounds)."""
    model, protocol, payload, concurrency = label
    latencies = sorted(ns for s in samples for ns in s.measurement.latencies_ns)
    rates = [len(s.measurement.latencies_ns) / s.measurement.window_s for s in samples]
    client = statistics.fmean(s.client_cores for s in samples)
    errors = [e for s in samples for e in s.measurement.error_samples]
    completed = sum(s.measurement.completed for s in samples)
    server_cpu = sum(s.server_cores * s.wall_s for s in samples)
    out = Row(model, protocol, concurrency, statistics.fmean(rates),
              percentile(latencies, 0.50), percentile(latencies, 0.95),
              percentile(latencies, 0.99), sum(s.measurement.errors for s in samples),
              client, statistics.fmean(s.server_cores for s in samples),
              "; ".join(errors[:3]), payload, rates,
              any(s.client_cores >= CLIENT_BOUND_SHARE * client_cpus() for s in samples),
              1e6 * server_cpu / completed if completed else float("nan"))
    log.info("%-6s %-18s %-14s c=%-3d %8.1f items/s p50 %.2f p99 %.2f ms %.0f us/item "
             "errors %d%s", model, protocol, payload, concurrency, out.items_per_s, out.p50_ms,
             out.p99_ms, out.server_us_per_item, out.errors,
             " CLIENT-BOUND" if out.client_bound else "")
    return out


def measure(label: tuple[str, str, str, int], coro: Coroutine[Any, Any, Any],
            server: ChildProcess) -> Row:
    return row(label, [sample(coro, server)])


def http_coro(port: int, bodies: list[Body], concurrency: int,
              duration: float) -> Coroutine[Any, Any, http_client.Measurement]:
    requests = [http_client.encode_request(f"127.0.0.1:{port}", b) for b in bodies]

    async def go() -> http_client.Measurement:
        result = await http_client.run_closed_loop(port, requests, concurrency=concurrency,
                                                   duration_s=duration)
        if result.first_body and bodies[0].kind != "empty":
            problem = check_answer(bodies[0], json.loads(result.first_body))
            if problem:
                result.error(problem)
        return result

    return go()
