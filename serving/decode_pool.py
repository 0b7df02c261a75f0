"""Threads that decode images and texts off the event loop, within a memory budget.

Decoding a large image holds the CPU for milliseconds to seconds; on the event loop it
would stall health checks and every other request. Here a fixed number of threads
(the CPUs the process may use) run decode jobs in arrival order, and each image's
decode first reserves the memory its header says it will take (``MemoryBudget``), so
the images in decoding at once never exceed the budget whatever the thread count.
A job whose request has passed its deadline is dropped before it starts; a job whose
client has left is cancelled while it waits.

The threads run at a lower scheduling priority (nice +10; Linux schedules threads on
their own): with as many decoding threads as CPUs, the event loop would otherwise wait
for a CPU behind them, and health checks with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from serving.errors import DeadlineExceeded, PayloadTooLarge

P = ParamSpec("P")
T = TypeVar("T")
_CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
DECODE_NICE = 10


def _lower_priority() -> None:
    """In each decoding thread: yield the CPU to the event loop's thread when both want it."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        thread = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + DECODE_NICE))


def available_cpus(cpu_max: Path = _CGROUP_V2_CPU_MAX) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota.

    ``os.cpu_count()`` counts the node's CPUs; a container limited to 2 CPUs on a
    64-CPU node would otherwise start 64 decoding threads.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    return max(1, count)


class MemoryBudget:
    """Bytes reserved by the decodes in progress. A reservation blocks its (worker)
    thread until it fits, or until its deadline (DeadlineExceeded)."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self._free = total_bytes
        self._changed = threading.Condition()

    @property
    def free(self) -> int:
        return self._free

    @contextlib.contextmanager
    def reserve(self, nbytes: int, deadline: float, what: str = "image") -> Iterator[None]:
        if nbytes > self.total:
            raise PayloadTooLarge(f"{what} needs about {nbytes >> 20} MiB to decode; the "
                                  f"server decodes at most {self.total >> 20} MiB at once")
        with self._changed:
            while self._free < nbytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded("deadline exceeded while waiting to decode")
                self._changed.wait(remaining)
            self._free -= nbytes
        try:
            yield
        finally:
            with self._changed:
                self._free += nbytes
                self._changed.notify_all()


class DecodePool:
    def __init__(self, threads: int, memory_bytes: int) -> None:
        self.threads = threads if threads > 0 else available_cpus()
        self.memory = MemoryBudget(memory_bytes)
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="decode",
                                            initializer=_lower_priority)

    async def run(self, deadline: float, job: Callable[P, T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """``job(*args)`` in a decoding thread; DeadlineExceeded if it cannot start in time."""
        def start() -> T:
            if time.monotonic() >= deadline:
                raise DeadlineExceeded("deadline exceeded while waiting to decode")
            return job(*args, **kwargs)
        # A cancelled await (the client left) cancels the job if it has not started.
        return await asyncio.wrap_future(self._executor.submit(start))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
