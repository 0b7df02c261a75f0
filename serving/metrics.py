"""Prometheus metrics: requests, latency, queue and compute time, batch sizes, queue depth.

One ``Metrics`` object per app, each with its own CollectorRegistry (tests build
many). With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before the workers start: each process then writes its values there and
``render`` merges them (gauges say how: queue depth sums over live workers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

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
        self._request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
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
                        self.request_latency.labels(model, version, protocol))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(latency_s)

    def set_model_loaded(self, model: str, version: int, loaded: bool) -> None:
        self.model_loaded.labels(model, str(version)).set(1 if loaded else 0)

    def batch_observer(self, model: str, version: int) -> BatchMetrics:
        return BatchMetrics(self, model, str(version))

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

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self._depth = metrics.queue_depth.labels(model, version)
        self._queue = metrics.queue_time.labels(model, version)
        self._compute = metrics.compute_time.labels(model, version)
        self._size = metrics.batch_size.labels(model, version)

    def queue_depth(self, rows: int) -> None:
        self._depth.set(rows)

    def batch_done(self, size: int, queue_s: Sequence[float], compute_s: float) -> None:
        self._size.observe(size)
        self._compute.observe(compute_s)
        for waited in queue_s:
            self._queue.observe(waited)
