"""Where one request's time went: receive, decode, queue wait, batch, inference, encode.

A ``RequestStages`` is made where a request starts (REST: the request-id middleware and
the HTTP protocol's hot lane; gRPC: the error decorator) and set in the ``current``
context variable; the batcher notes on it the batch the request ran in, the dataplane
the model, version and outcome. When the request ends the same record feeds the
``Server-Timing`` header (REST), the trace spans (serving/tracing.py, only when an
OTLP endpoint is configured) and the request capture (serving/capture.py).

Every time is ``time.monotonic()`` (the clock the batcher and the deadlines use); a
stage whose end was never reached (a request refused before queueing, say) is left
out. Recording costs a few attribute stores per request.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

current: contextvars.ContextVar[RequestStages | None] = contextvars.ContextVar(
    "request_stages", default=None)


class RequestStages:
    # Class-level defaults: a request sets only what it reaches (creating the record is
    # on every request's path, so it assigns three attributes, not twenty).
    received: float | None = None  # the whole body was read
    enqueued: float | None = None  # handed to the model's batch queue
    batch_start: float | None = None
    batch_end: float | None = None
    run_start: float | None = None  # the model's own run, inside the batch
    run_end: float | None = None
    batch_rows = 0
    batch_requests = 0
    batch_id = 0
    done: float | None = None  # the response is encoded, about to be sent
    model = ""
    version = ""
    label = ""
    status = ""
    # Kept only for the capture (references, not copies: they are not changed later).
    inputs: Any = None
    outputs: Any = None
    traceparent: str | None = None
    tracestate: str | None = None

    def __init__(self, arrived: float, name: str, request_id: str = "-") -> None:
        self.arrived = arrived  # the request's head was parsed
        self.name = name  # what the trace's root span is called: "POST /v1/...", an RPC
        self.request_id = request_id

    def ran_in(self, batch_id: int, rows: int, requests: int, start: float,
               end: float) -> None:
        """The batcher: this request ran in batch ``batch_id`` of ``rows`` rows."""
        self.batch_id, self.batch_rows, self.batch_requests = batch_id, rows, requests
        self.batch_start, self.batch_end = start, end

    def intervals(self) -> list[tuple[str, float, float]]:
        """(stage, start, end) for every stage this request reached, in order."""
        found: list[tuple[str, float, float]] = []
        received = self.received if self.received is not None else self.arrived
        found.append(("receive", self.arrived, received))
        if self.enqueued is not None:
            found.append(("decode", received, self.enqueued))
            if self.batch_start is not None and self.batch_end is not None:
                found.append(("queue", self.enqueued, self.batch_start))
                found.append(("batch", self.batch_start, self.batch_end))
                if self.run_start is not None and self.run_end is not None:
                    found.append(("inference", self.run_start, self.run_end))
                if self.done is not None:
                    found.append(("encode", self.batch_end, self.done))
        return found

    def server_timing(self) -> str:
        """The ``Server-Timing`` header value: each stage's duration in milliseconds, the
        batch's size in its description, and the total."""
        end = self.done if self.done is not None else time.monotonic()
        if (self.run_end is not None and self.done is not None and self.enqueued is not None
                and self.batch_start is not None and self.batch_end is not None
                and self.run_start is not None):
            # Every stage reached (the usual answer): one format operation, as the header
            # is on every inference response's path. A request whose deadline passed while
            # its batch ran has run times but no batch of its own: the general path below.
            received = self.received if self.received is not None else self.arrived
            return _EVERY_STAGE % (
                (received - self.arrived) * 1e3, (self.enqueued - received) * 1e3,
                (self.batch_start - self.enqueued) * 1e3, self.batch_rows,
                self.batch_requests, (self.batch_end - self.batch_start) * 1e3,
                (self.run_end - self.run_start) * 1e3, (self.done - self.batch_end) * 1e3,
                (end - self.arrived) * 1e3)
        parts = []
        for stage, start, stop in self.intervals():
            dur = f"dur={max(0.0, stop - start) * 1000.0:.3f}"
            if stage == "batch":
                parts.append(f'batch;desc="rows={self.batch_rows} '
                             f'requests={self.batch_requests}";{dur}')
            else:
                parts.append(f"{stage};{dur}")
        parts.append(f"total;dur={max(0.0, end - self.arrived) * 1000.0:.3f}")
        return ", ".join(parts)


_EVERY_STAGE = ('receive;dur=%.3f, decode;dur=%.3f, queue;dur=%.3f, '
                'batch;desc="rows=%d requests=%d";dur=%.3f, inference;dur=%.3f, '
                'encode;dur=%.3f, total;dur=%.3f')


def start(name: str, request_id: str = "-", arrived: float | None = None) -> RequestStages:
    """A record for the request starting in this context, set as ``current``."""
    stages = RequestStages(time.monotonic() if arrived is None else arrived, name, request_id)
    current.set(stages)
    return stages
