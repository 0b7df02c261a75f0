"""Dynamic batching, protocol-blind: one Batcher per served model version.

Each request is an item: a dict of arrays sharing a leading batch dimension n. The
queue is bounded in *rows* (the sum of n over queued items). A worker coroutine
takes the oldest item and every later item of the same trailing shapes and dtypes
(items that cannot be concatenated are never merged) up to ``max_batch_size`` rows:

- when the item arrived while a worker was free, the batch is dispatched at once
  with whatever is queued: an idle model adds no queue delay;
- when it arrived while every worker was busy, the batch waits for more rows until
  it is full or the oldest item has waited ``max_queue_delay_s``.

Concatenation, ``run_batch`` and the split run in the executor (ONNX Runtime
releases the GIL), or, with ``inline=True`` for models whose largest batch takes
microseconds, on the event loop itself: a thread hop costs more than such a run.
Every output's leading dimension must equal the batch's rows, or
the batch fails with InferenceFailed naming the mismatch. If a merged batch raises,
each item is retried alone so one bad item fails only its own request. Deadlines
and cancelled callers remove items from the queue before they use compute; results
are only set on futures that are not done (a disconnected caller's is cancelled).
A model without a batch dimension (``batch_dim=False``) runs each request alone, as
one row, its tensors as given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from serving import stages as request_stages
from serving.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    Overloaded,
    ServingError,
    ShuttingDown,
    TooManyItems,
)

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
RunBatch = Callable[[Arrays], Arrays]


class BatchObserver(Protocol):
    """Hooks for metrics, so this module never imports a metrics library."""

    def queue_depth(self, rows: int) -> None: ...

    def batch_done(self, size: int, queue_s: Sequence[float], compute_s: float) -> None: ...


@dataclass(eq=False)
class _Item:
    inputs: Arrays
    rows: int
    key: tuple[tuple[str, str, tuple[int, ...]], ...]
    future: asyncio.Future[Arrays]
    deadline: float | None  # time.monotonic()
    enqueued: float = field(default_factory=time.monotonic)
    arrived_busy: bool = False
    queued: bool = True  # False once taken, expired or cancelled
    timer: asyncio.TimerHandle | None = None
    # The request's stage record (serving/stages.py): told the batch it ran in.
    stages: request_stages.RequestStages | None = None


@dataclass
class _Batch:
    items: list[_Item]
    rows: int


class Batcher:
    def __init__(self, run_batch: RunBatch, *, name: str, max_batch_size: int,
                 max_queue_delay_s: float, max_queue_size: int,
                 executor: concurrent.futures.Executor,
                 observer: BatchObserver | None = None, max_concurrent_batches: int = 1,
                 inline: bool = False, batch_dim: bool = True) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_concurrent_batches < 1:
            raise ValueError("batch size, queue size and concurrency must be at least 1")
        self.run_batch = run_batch
        self.name = name
        # No batch dimension: nothing to merge along, each request is one row.
        self.batch_dim = batch_dim
        self.max_batch_size = max_batch_size if batch_dim else 1
        self.max_queue_delay_s = max(0.0, max_queue_delay_s)
        self.max_queue_size = max_queue_size
        self.executor = executor
        self.observer = observer
        self.max_concurrent_batches = max_concurrent_batches
        # Run batches on the event loop itself: only for models whose largest batch takes
        # less time than handing it to a thread and back (tens of microseconds).
        self.inline = inline
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._busy = 0
        # Workers holding a batch they are still gathering: its items are neither queued
        # nor running, but drain must wait for them too.
        self._gathering = 0
        self._accepting = True
        self._workers: list[asyncio.Task[None]] = []
        self._collect_lock: asyncio.Lock | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._idle: asyncio.Event | None = None
        self._batches = 0  # batches run so far: the id a request's trace and capture show

    @property
    def queue_depth(self) -> int:
        """Rows waiting in the queue (not yet dispatched)."""
        return self._queued_rows

    @property
    def in_flight(self) -> int:
        return self._busy

    async def start(self) -> None:
        if self._workers:
            return
        self._collect_lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers = [asyncio.create_task(self._worker(), name=f"batcher-{self.name}-{i}")
                         for i in range(self.max_concurrent_batches)]

    async def submit(self, inputs: Arrays, *, deadline: float | None = None) -> Arrays:
        """Queue one request of n rows; its outputs, each with the same leading n."""
        if not self._accepting:
            raise ShuttingDown(f"model {self.name} is shutting down")
        rows, key = self._check(inputs)
        if self._queued_rows + rows > self.max_queue_size:
            raise Overloaded(f"model {self.name}: queue full ({self._queued_rows} rows queued, "
                             f"limit {self.max_queue_size})")
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceeded(f"model {self.name}: deadline passed before queueing")
        if not self._workers:
            await self.start()
        loop = asyncio.get_running_loop()
        item = _Item(inputs, rows, key, loop.create_future(), deadline,
                     arrived_busy=self._busy >= self.max_concurrent_batches)
        if deadline is not None:
            item.timer = loop.call_later(deadline - item.enqueued, self._expire, item)
        stages = request_stages.current.get()
        if stages is not None:
            item.stages = stages
            stages.enqueued = item.enqueued
        self._enqueue(item)
        try:
            return await item.future
        except asyncio.CancelledError:
            self._unqueue(item)  # the caller went away: never compute for it
            self._check_idle()
            raise
        finally:
            if item.timer is not None:
                item.timer.cancel()

    def _check(self, inputs: Arrays) -> tuple[int, tuple[tuple[str, str, tuple[int, ...]], ...]]:
        if not inputs:
            raise InvalidInput("no inputs given")
        if not self.batch_dim:
            return 1, tuple(sorted((k, a.dtype.str, a.shape) for k, a in inputs.items()))
        sizes = {a.shape[0] if a.ndim else 0 for a in inputs.values()}
        if len(sizes) != 1 or (rows := sizes.pop()) < 1:
            shapes = {k: list(a.shape) for k, a in inputs.items()}
            raise InvalidInput(f"every input needs the same leading batch dimension >= 1, "
                               f"got {shapes}")
        if rows > self.max_batch_size:
            raise TooManyItems(f"model {self.name}: {rows} items in one request exceed the "
                               f"maximum batch size of {self.max_batch_size}")
        key = tuple(sorted((k, a.dtype.str, a.shape[1:]) for k, a in inputs.items()))
        return rows, key

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        self._queued_rows += item.rows
        if self._idle is not None:
            self._idle.clear()
        self._notify()
        if self.observer is not None:
            self.observer.queue_depth(self._queued_rows)

    def _unqueue(self, item: _Item) -> None:
        if item.queued:
            item.queued = False
            self._queued_rows -= item.rows
            if self.observer is not None:
                self.observer.queue_depth(self._queued_rows)

    def _expire(self, item: _Item) -> None:
        """Timer callback: answer 504 at the deadline, queued or computing."""
        self._drop_expired(item)
        self._check_idle()

    def _drop_expired(self, item: _Item) -> None:
        if not item.future.done():
            where = "in the queue" if item.queued else "(the batch was still running)"
            item.future.set_exception(DeadlineExceeded(
                f"model {self.name}: deadline passed after "
                f"{time.monotonic() - item.enqueued:.3f}s {where}"))
        self._unqueue(item)

    def _notify(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait_new(self, timeout: float | None) -> None:
        """Until an item is queued (or the batcher stops), at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        handle = None
        if timeout is not None:
            handle = loop.call_later(timeout, _resolve, self._waiter)
        try:
            await self._waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def _worker(self) -> None:
        assert self._collect_lock is not None
        while True:
            async with self._collect_lock:
                batch = await self._collect()
            if batch is None:
                return
            self._gathering -= 1
            # Callers that went away or expired while the batch gathered use no compute.
            batch.items = [i for i in batch.items if not i.future.done()]
            batch.rows = sum(i.rows for i in batch.items)
            if not batch.items:
                self._check_idle()
                continue
            self._busy += 1
            try:
                await self._execute(batch)
            finally:
                self._busy -= 1
                self._check_idle()

    async def _collect(self) -> _Batch | None:
        while True:
            batch = self._take(None)
            if batch.items:
                break
            if not self._accepting and not self._queue:
                return None
            await self._wait_new(None)
        first = batch.items[0]
        self._gathering += 1  # until the worker counts the batch as busy
        if first.arrived_busy and self.max_queue_delay_s > 0:
            until = first.enqueued + self.max_queue_delay_s
            try:
                while batch.rows < self.max_batch_size and \
                        (left := until - time.monotonic()) > 0:
                    if not self._accepting:
                        break
                    await self._wait_new(left)
                    self._take(batch)
            except asyncio.CancelledError:
                # close() without a drain: these callers must hear why, not hang.
                self._gathering -= 1
                _fail(batch.items, ShuttingDown(f"model {self.name} was unloaded"))
                raise
        if self.observer is not None:
            self.observer.queue_depth(self._queued_rows)
        return batch

    def _take(self, batch: _Batch | None) -> _Batch:
        """Move queued items compatible with ``batch`` (FIFO) into it, up to the row limit."""
        batch = batch or _Batch([], 0)
        skipped: list[_Item] = []
        now = time.monotonic()
        while self._queue and batch.rows < self.max_batch_size:
            item = self._queue.popleft()
            if not item.queued or item.future.done():
                self._unqueue(item)
                continue
            if batch.items and item.key != batch.items[0].key:
                skipped.append(item)  # a different shape: a later batch takes it
                continue
            if batch.rows + item.rows > self.max_batch_size:
                self._queue.appendleft(item)
                break
            if item.deadline is not None and item.deadline <= now:
                self._drop_expired(item)
                continue
            self._unqueue(item)
            batch.items.append(item)
            batch.rows += item.rows
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _execute(self, batch: _Batch) -> None:
        start = time.monotonic()
        try:
            results = await self._call(batch.items)
        except asyncio.CancelledError:
            _fail(batch.items, ShuttingDown(f"model {self.name} was unloaded"))
            raise
        except Exception as exc:
            if len(batch.items) > 1 and not isinstance(exc, _LengthMismatch):
                log.warning("%s: batch of %d requests failed (%s); retrying each alone",
                            self.name, len(batch.items), exc)
                await self._retry_alone(batch.items)
            else:
                _fail(batch.items, _as_serving_error(self.name, exc))
            return
        end = time.monotonic()
        compute_s = end - start
        self._batches += 1
        for item, result in zip(batch.items, results, strict=True):
            if item.stages is not None:
                item.stages.ran_in(self._batches, batch.rows, len(batch.items), start, end)
            if not item.future.done():
                item.future.set_result(result)
        if self.observer is not None:
            self.observer.batch_done(batch.rows, [start - i.enqueued for i in batch.items],
                                     compute_s)

    async def _call(self, items: list[_Item]) -> list[Arrays]:
        if self.inline:
            return self._run_merged(items)  # tiny model: a thread hop costs more than the run
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._run_merged, items)

    async def _retry_alone(self, items: list[_Item]) -> None:
        for item in items:
            if item.future.done():
                continue
            try:
                result = await self._call([item])
            except asyncio.CancelledError:
                _fail(items, ShuttingDown(f"model {self.name} was unloaded"))
                raise
            except Exception as exc:
                _fail([item], _as_serving_error(self.name, exc))
                continue
            if not item.future.done():
                item.future.set_result(result[0])

    def _run_merged(self, items: list[_Item]) -> list[Arrays]:
        """Executor thread: concatenate, run, check leading dims, split by rows."""
        if len(items) == 1:
            feeds = items[0].inputs
        else:
            feeds = {k: np.concatenate([i.inputs[k] for i in items]) for k in items[0].inputs}
        rows = sum(i.rows for i in items)
        run_start = time.monotonic()
        outputs = self.run_batch(feeds)
        run_end = time.monotonic()
        for item in items:
            if item.stages is not None:
                item.stages.run_start, item.stages.run_end = run_start, run_end
        if not self.batch_dim:
            return [outputs]
        wrong = {k: list(np.shape(v)) for k, v in outputs.items()
                 if np.ndim(v) == 0 or np.shape(v)[0] != rows}
        if wrong or not outputs:
            raise _LengthMismatch(f"model {self.name}: a batch of {rows} rows gave outputs "
                                  f"with shapes {wrong or 'none'}; each output needs {rows} "
                                  f"rows first")
        if len(items) == 1:
            return [outputs]
        split, offset = [], 0
        for item in items:
            split.append({k: v[offset:offset + item.rows] for k, v in outputs.items()})
            offset += item.rows
        return split

    def _check_idle(self) -> None:
        if (self._idle is not None and self._busy == 0 and self._queued_rows == 0
                and self._gathering == 0):
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting (ShuttingDown) and finish queued work; False on timeout."""
        self._accepting = False
        self._notify()
        if self._idle is None:
            return True
        self._check_idle()
        if self._idle.is_set():
            return True
        # asyncio.wait, not wait_for: 3.11's wait_for may swallow the caller's own
        # cancellation when the event fires at the same moment.
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle}, timeout=timeout_s)
        finally:
            idle.cancel()
        if not self._idle.is_set():
            log.warning("%s: %d rows still queued after draining %.1fs", self.name,
                        self._queued_rows, timeout_s)
            return False
        return True

    async def close(self) -> None:
        """Stop at once: queued requests fail with ShuttingDown."""
        self._accepting = False
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ShuttingDown(f"model {self.name} was unloaded"))
            self._unqueue(item)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        self._check_idle()


class _LengthMismatch(InferenceFailed):
    """Outputs do not have the batch's rows: retrying items alone would not help."""


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _as_serving_error(name: str, exc: BaseException) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    return InferenceFailed(f"model {name}: inference failed",
                           detail=f"{type(exc).__name__}: {exc}")


def _fail(items: list[_Item], exc: ServingError) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(exc)
