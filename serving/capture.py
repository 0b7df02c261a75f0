"""Request capture: a sampled log of what a model saw and said, as JSON lines.

Off unless ``capture_path`` is set. A request is sampled when it ends (the dataplane's
outcome hook) with its model's rate (``capture_rate``, per model in
``capture_model_rates``); a sampled request puts a tuple of references (its arrays are
not copied: nothing changes them after the request) on a queue and returns; the queue
is bounded in records and in the bytes of the arrays they hold. One writer thread
turns records into JSON and appends them to a rotating file. The request path never
waits: when the queue is full the record is dropped and counted
(``modelserve_capture_dropped_total``).

Disk use is bounded: the file rotates at ``capture_max_bytes`` and ``capture_backups``
old files are kept (``capture.jsonl.1`` ...), so the log takes at most
(backups + 1) x max_bytes. A line never exceeds max_bytes: inputs or outputs that
would make it longer are summarised instead.

What is written of the inputs (``capture_inputs``): ``full`` (each array whole up to
``capture_max_array_bytes``, summarised above it), ``summary`` (dtype, shape, and for
numbers min, max and mean), or ``none`` (privacy: no raw input leaves the request).
Outputs are written whole up to the same size (predictions always).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import queue
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.metrics import Metrics
    from serving.stages import RequestStages

logger = logging.getLogger(__name__)
_STOP = object()


class CaptureLog:
    def __init__(self, path: Path, *, rate: float, model_rates: dict[str, float],
                 inputs: str, max_array_bytes: int, max_bytes: int, backups: int,
                 queue_size: int, queue_bytes: int = 64 * 1024 * 1024,
                 metrics: Metrics | None = None) -> None:
        self.path = path
        self.rate = rate
        self.model_rates = dict(model_rates)
        self.inputs = inputs
        self.max_array_bytes = max_array_bytes
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.written = 0
        self.dropped = 0
        # The arrays queued records hold (an image request's decoded inputs are megabytes):
        # past queue_bytes a record is dropped, as past queue_size.
        self.queue_bytes = queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # The standard library's rotation (rename to .1, .2, ...; the oldest removed).
        self._file = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._file.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._random = random.Random()
        self._thread = threading.Thread(target=self._write_loop, name="request-capture",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None
                      ) -> CaptureLog | None:
        if settings.capture_path is None:
            return None
        path = settings.capture_path
        if settings.workers > 1:  # each worker process writes a file of its own
            path = path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
        return cls(path, rate=settings.capture_rate, model_rates=settings.capture_model_rates,
                   inputs=settings.capture_inputs,
                   max_array_bytes=settings.capture_max_array_bytes,
                   max_bytes=settings.capture_max_bytes, backups=settings.capture_backups,
                   queue_size=settings.capture_queue_size,
                   queue_bytes=settings.capture_queue_bytes, metrics=metrics)

    @property
    def keeps_inputs(self) -> bool:
        """Whether requests should keep their inputs for the capture at all."""
        return self.inputs != "none"

    def offer(self, stages: RequestStages | None, model: str, version: str, protocol: str,
              status: str, latency_s: float) -> None:
        """On the request path: sample, and queue the record without waiting."""
        rate = self.model_rates.get(model, self.rate)
        if rate <= 0.0 or (rate < 1.0 and self._random.random() >= rate):
            return
        size = _held_bytes(stages)
        with self._bytes_lock:
            fits = self._queued_bytes + size <= self.queue_bytes
            if fits:
                self._queued_bytes += size
        if fits:
            try:
                self._queue.put_nowait((time.time(), model, version, protocol, status,
                                        latency_s, stages, size))
                return
            except queue.Full:
                with self._bytes_lock:
                    self._queued_bytes -= size
        self.dropped += 1
        if self.metrics is not None:
            self.metrics.capture_dropped.inc()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, then stop the writer (blocks up to ``timeout_s``)."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._file.close()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued record is written (tests, shutdown)."""
        until = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < until:
            time.sleep(0.005)
        self._file.flush()

    # The writer thread ------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            record = self._queue.get()
            try:
                if record is _STOP:
                    return
                self._write(record)
            except Exception:  # one odd record must not stop the capture
                logger.exception("request capture: a record could not be written")
            finally:
                self._queue.task_done()

    def _write(self, record: tuple[Any, ...]) -> None:
        at, model, version, protocol, status, latency_s, stages, size = record
        with self._bytes_lock:
            self._queued_bytes -= size
        line: dict[str, Any] = {
            "time": round(at, 6), "request_id": getattr(stages, "request_id", "-"),
            "model": model, "version": version, "protocol": protocol, "status": status,
            "latency_ms": round(latency_s * 1000.0, 3)}
        if stages is not None:
            line |= self._from_stages(stages)
        text = orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        if len(text) >= self.max_bytes:  # keep every line within one file's share
            for key in ("inputs", "outputs"):
                if key in line:
                    line[key] = {"omitted": f"record over {self.max_bytes} bytes"}
            text = orjson.dumps(line).decode()
        self._file.handle(logging.makeLogRecord({"msg": text, "args": None}))
        self.written += 1
        if self.metrics is not None:
            self.metrics.capture_written.inc()

    def _from_stages(self, stages: RequestStages) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if stages.label:
            found["label"] = stages.label
        if stages.batch_id:
            found["batch"] = {"id": stages.batch_id, "rows": stages.batch_rows,
                              "requests": stages.batch_requests}
        if stages.traceparent:
            found["traceparent"] = stages.traceparent
        if self.inputs != "none" and stages.inputs is not None:
            found["inputs"] = {name: self._array(array, whole=self.inputs == "full")
                               for name, array in stages.inputs.items()}
        if stages.outputs is not None:
            found["outputs"] = self._outputs(stages.outputs)
        return found

    def _outputs(self, outputs: Any) -> Any:
        if isinstance(outputs, dict):
            return {name: self._array(array, whole=True) for name, array in outputs.items()}
        return outputs  # predictions of a task: already plain lists and dicts

    def _array(self, array: Any, *, whole: bool) -> Any:
        array = np.asarray(array)
        if whole and array.nbytes <= self.max_array_bytes:
            if array.dtype == object:
                return {"dtype": "BYTES", "shape": list(array.shape),
                        "data": [_text(v) for v in array.reshape(-1).tolist()]}
            return {"dtype": str(array.dtype), "shape": list(array.shape),
                    "data": array.tolist()}
        return summary(array)


def _held_bytes(stages: RequestStages | None) -> int:
    """The array bytes a queued record keeps alive."""
    if stages is None:
        return 0
    size = 0
    for arrays in (stages.inputs, stages.outputs):
        if isinstance(arrays, dict):
            size += sum(getattr(a, "nbytes", 0) for a in arrays.values())
    return size


def summary(array: np.ndarray) -> dict[str, Any]:
    """Dtype and shape; for numbers also min, max and mean (no values of the input)."""
    found: dict[str, Any] = {"dtype": "BYTES" if array.dtype == object else str(array.dtype),
                             "shape": list(array.shape)}
    if array.size and (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        values = array.astype(np.float64, copy=False)
        found |= {"min": float(values.min()), "max": float(values.max()),
                  "mean": float(values.mean())}
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
