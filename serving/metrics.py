"""Prometheus metrics: requests, latency, queue and compute time, batch sizes, queue depth.

One ``Metrics`` object per app, each with its own CollectorRegistry (tests build
many). With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before the workers start: each process then writes its values there and
``render`` merges them (gauges say how: queue depth sums over live workers).

``Metrics.live`` keeps the last minute per model in memory for the playground's
live view (``LiveWindow``: one slot per second, a few increments per event).
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    multiprocess,
    platform_collector,
    process_collector,
)

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                   5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Why a request was refused before or while it waited to run (errors.ServingError.rejection).
REJECTION_REASONS = ("queue_full", "deadline", "too_large")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, *,
                 namespace: str = "modelserve") -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = registry if registry is not None else CollectorRegistry()
        if not self.multiprocess and registry is None:
            # What the default registry would show for this process.
            process_collector.ProcessCollector(registry=self.registry)
            platform_collector.PlatformCollector(registry=self.registry)
            gc_collector.GCCollector(registry=self.registry)
        ns, reg = namespace, self.registry
        self.requests = Counter("requests", "Inference requests by outcome (gRPC code name)",
                                ["model", "version", "protocol", "status"], namespace=ns,
                                registry=reg)
        self.request_latency = Histogram(
            "request_duration_seconds", "Time from request decoded to response ready",
            ["model", "version", "protocol"], namespace=ns, registry=reg,
            buckets=LATENCY_BUCKETS)
        self.queue_time = Histogram("queue_duration_seconds", "Time a request waited to run",
                                    ["model", "version"], namespace=ns, registry=reg,
                                    buckets=LATENCY_BUCKETS)
        self.compute_time = Histogram("compute_duration_seconds", "Time one batch ran",
                                      ["model", "version"], namespace=ns, registry=reg,
                                      buckets=LATENCY_BUCKETS)
        self.batch_size = Histogram("batch_size", "Rows per executed batch",
                                    ["model", "version"], namespace=ns, registry=reg,
                                    buckets=BATCH_BUCKETS)
        self.queue_depth = Gauge("queue_depth", "Rows waiting in the batch queue",
                                 ["model", "version"], namespace=ns, registry=reg,
                                 multiprocess_mode="livesum")
        # Set once per version: the fill ratio is batch_size over it, in PromQL, so a batch
        # pays for no second histogram.
        self.max_batch_size = Gauge("max_batch_size", "Largest batch the version forms (rows)",
                                    ["model", "version"], namespace=ns, registry=reg,
                                    multiprocess_mode="livemax")
        # "label" is the version label the request was routed by ("" when none).
        self.rejections = Counter(
            "rejections", "Requests refused for capacity: queue_full, deadline, too_large",
            ["model", "version", "label", "reason"], namespace=ns, registry=reg)
        self.capture_written = Counter("capture_records",
                                       "Request capture records written", namespace=ns,
                                       registry=reg)
        self.capture_dropped = Counter(
            "capture_dropped", "Request capture records dropped (the writer fell behind)",
            namespace=ns, registry=reg)
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any, LiveModel]] = {}
        self.live = LiveWindow()
        self.model_loaded = Gauge("model_loaded", "1 when the model version is serving",
                                  ["model", "version"], namespace=ns, registry=reg,
                                  multiprocess_mode="livemax")

    def observe_request(self, model: str, version: str, protocol: str, status: str,
                        latency_s: float) -> None:
        # Labelled children cached: .labels() validates and locks on every call, a
        # noticeable share of a digit request. Label values are bounded (the dataplane
        # files unknown model names under one label).
        key = (model, version, protocol, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(model, version, protocol, status),
                        self.request_latency.labels(model, version, protocol),
                        self.live.model(model))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(latency_s)
        live = children[2]
        if version:
            live.version = version
        live.request(status == "OK", latency_s)

    def observe_rejection(self, model: str, version: str, label: str, reason: str) -> None:
        self.rejections.labels(model, version, label, reason).inc()

    def set_model_loaded(self, model: str, version: int, loaded: bool) -> None:
        self.model_loaded.labels(model, str(version)).set(1 if loaded else 0)

    def batch_observer(self, model: str, version: int,
                       max_batch_size: int | None = None) -> BatchMetrics:
        return BatchMetrics(self, model, str(version), max_batch_size)

    def render(self) -> tuple[bytes, str]:
        """The exposition text for GET /metrics, merged over workers when multiprocess."""
        if self.multiprocess:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @staticmethod
    def mark_process_dead(pid: int) -> None:
        """Call from the parent when a worker exits, so its live gauges stop counting."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(pid)


class BatchMetrics:
    """A batching.BatchObserver bound to one model version (children resolved once)."""

    def __init__(self, metrics: Metrics, model: str, version: str,
                 max_batch_size: int | None = None) -> None:
        if max_batch_size:
            metrics.max_batch_size.labels(model, version).set(max_batch_size)
        self._depth = metrics.queue_depth.labels(model, version)
        self._queue = metrics.queue_time.labels(model, version)
        self._compute = metrics.compute_time.labels(model, version)
        self._size = metrics.batch_size.labels(model, version)
        self._live = metrics.live.model(model)
        self._live.version = version

    def queue_depth(self, rows: int) -> None:
        self._depth.set(rows)
        self._live.queue_depth(rows)

    def batch_done(self, size: int, queue_s: Sequence[float], compute_s: float) -> None:
        self._size.observe(size)
        self._live.batch(size)
        self._compute.observe(compute_s)
        for waited in queue_s:
            self._queue.observe(waited)


# Live view: latency buckets 0.05 ms .. ~40 s, 25% apart (percentiles to within a bucket).
LIVE_LATENCY_EDGES_S = tuple(0.00005 * 1.25 ** i for i in range(62))
LIVE_SECONDS = 60


class _Second:
    """What one model did during one wall-clock second."""

    __slots__ = ("batch_sizes", "errors", "latency", "queue_max", "requests", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.latency = [0] * (len(LIVE_LATENCY_EDGES_S) + 1)
        self.batch_sizes: dict[int, int] = {}
        self.queue_max = 0


class LiveModel:
    """One model's last ``seconds`` seconds, a ring of per-second slots.

    Called on the event loop only (requests and batches finish there), so no lock."""

    def __init__(self, seconds: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._slots = [_Second(-1) for _ in range(seconds)]
        self.version = ""
        self.queue_now = 0

    def _slot(self) -> _Second:
        now = int(self._clock())
        slot = self._slots[now % len(self._slots)]
        if slot.second != now:
            slot = self._slots[now % len(self._slots)] = _Second(now)
        return slot

    def request(self, ok: bool, latency_s: float) -> None:
        slot = self._slot()
        slot.requests += 1
        if not ok:
            slot.errors += 1
        slot.latency[bisect_left(LIVE_LATENCY_EDGES_S, latency_s)] += 1

    def batch(self, size: int) -> None:
        sizes = self._slot().batch_sizes
        sizes[size] = sizes.get(size, 0) + 1

    def queue_depth(self, rows: int) -> None:
        self.queue_now = rows
        if rows:  # an empty queue raises no maximum: skip the slot (most calls when idle)
            slot = self._slot()
            if rows > slot.queue_max:
                slot.queue_max = rows

    def snapshot(self) -> dict[str, Any]:
        """Per second, oldest first, and the whole window summed."""
        now = int(self._clock())
        n = len(self._slots)
        slots = [slot if slot.second == second else None  # None: nothing that second
                 for second in range(now - n + 1, now + 1)
                 for slot in (self._slots[second % n],)]
        # Percentiles for every second at once: the histograms as one (n, buckets) array.
        latency = np.array([_NO_LATENCY if slot is None else slot.latency for slot in slots],
                           dtype=np.int64)
        p50, p99 = (_percentiles_ms(latency, q) for q in (0.50, 0.99))
        seconds = [_IDLE if slot is None else _second_stats(slot, a, b)
                   for slot, a, b in zip(slots, p50, p99, strict=True)]
        total = _Second(now)
        for slot in slots:
            if slot is not None:
                _add(total, slot)
        whole = latency.sum(axis=0, keepdims=True)
        window = _second_stats(total, _percentiles_ms(whole, 0.50)[0],
                               _percentiles_ms(whole, 0.99)[0])
        return {"version": self.version, "queue_depth": self.queue_now, "seconds": seconds,
                "window": window | {
                    "requests_per_s": round(total.requests / n, 3),
                    "batch_sizes": {str(k): v for k, v in sorted(total.batch_sizes.items())}}}


def _add(total: _Second, slot: _Second) -> None:
    total.requests += slot.requests
    total.errors += slot.errors
    for size, count in slot.batch_sizes.items():
        total.batch_sizes[size] = total.batch_sizes.get(size, 0) + count
    total.queue_max = max(total.queue_max, slot.queue_max)


def _second_stats(slot: _Second, p50: float | None, p99: float | None) -> dict[str, Any]:
    batches = sum(slot.batch_sizes.values())
    rows = sum(size * count for size, count in slot.batch_sizes.items())
    return {"requests": slot.requests, "errors": slot.errors, "p50_ms": p50, "p99_ms": p99,
            "batches": batches, "mean_batch": round(rows / batches, 2) if batches else None,
            "max_batch": max(slot.batch_sizes, default=None), "queue_max": slot.queue_max}


_NO_LATENCY = [0] * (len(LIVE_LATENCY_EDGES_S) + 1)
_IDLE: dict[str, Any] = {"requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None,
                         "batches": 0, "mean_batch": None, "max_batch": None, "queue_max": 0}
# Bucket i's upper edge in ms; the overflow bucket reports the last edge.
_EDGES_MS = np.array([*LIVE_LATENCY_EDGES_S, LIVE_LATENCY_EDGES_S[-1]]) * 1000.0


def _percentiles_ms(counts: np.ndarray, q: float) -> list[float | None]:
    """Per row of histograms: the upper edge of the bucket holding the q-th request
    (None for a row without requests)."""
    cumulative = counts.cumsum(axis=1)
    totals = cumulative[:, -1]
    bucket = (cumulative >= (q * totals)[:, None]).argmax(axis=1)
    return [round(float(_EDGES_MS[b]), 3) if t else None
            for b, t in zip(bucket.tolist(), totals.tolist(), strict=True)]


class LiveWindow:
    """The last minute of every model, for the playground's live view (``snapshot``).

    Kept beside the Prometheus series, not derived from them: a rate or a percentile
    over the last minute needs time buckets that cumulative counters do not have. Each
    event costs a slot lookup and a few increments. With several worker processes each
    keeps its own window (the view shows the worker that answered)."""

    def __init__(self, seconds: int = LIVE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._models: dict[str, LiveModel] = {}

    def model(self, name: str) -> LiveModel:
        live = self._models.get(name)
        if live is None:
            live = self._models[name] = LiveModel(self.seconds, self._clock)
        return live

    def snapshot(self) -> dict[str, Any]:
        return {"window_s": self.seconds,
                "models": {name: live.snapshot() for name, live in sorted(self._models.items())}}
