"""The closed-loop HTTP client (http_client.py) in several processes, so that the client
is not the bottleneck of a server with several worker processes.

Each process drives its share of the connections over the same requests and returns
its latencies, errors and CPU seconds; the totals are merged into one Measurement and
the client's CPU (cores busy over the run) is reported beside it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.http_client import Measurement, run_closed_loop


@dataclass
class ClientRun:
    measurement: Measurement
    client_cores: float  # CPU seconds of every client process / wall seconds
    processes: int


def _run(coro: Coroutine[Any, Any, Measurement]) -> Measurement:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # uvloop is not on every platform
        return asyncio.run(coro)


def _child(port: int, requests: Sequence[bytes], concurrency: int, duration_s: float,
           warmup_s: float) -> tuple[Measurement, float]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = _run(run_closed_loop(port, requests, concurrency=concurrency,
                                  duration_s=duration_s, warmup_s=warmup_s))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, cpu


def run_processes(port: int, requests: Sequence[bytes], *, concurrency: int,
                  duration_s: float, processes: int, warmup_s: float = 0.5) -> ClientRun:
    """``concurrency`` connections spread over ``processes`` (fewer when concurrency is
    lower), each for ``warmup_s + duration_s``."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes)
              for i in range(processes)]
    # Every process cycles the requests from its own offset (no two send the same item).
    offsets = [list(requests[i % len(requests):]) + list(requests[:i % len(requests)])
               for i in range(processes)]
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        outcomes = pool.starmap(_child, [(port, offsets[i], shares[i], duration_s, warmup_s)
                                         for i in range(processes)])
    wall = warmup_s + duration_s  # what each child ran (its CPU is measured over that)
    merged = Measurement(window_s=duration_s)
    cpu = 0.0
    for result, seconds in outcomes:
        merged.latencies_ns.extend(result.latencies_ns)
        merged.errors += result.errors
        merged.error_samples.extend(result.error_samples[:3 - len(merged.error_samples)])
        merged.first_body = merged.first_body or result.first_body
        cpu += seconds
    return ClientRun(merged, cpu / wall, processes)
