"""The request capture's queue and writer thread (serving/capture.py), on a real file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from serving.capture import CaptureLog, summary
from serving.metrics import Metrics
from serving.stages import RequestStages


def _log(path: Path, **overrides: object) -> CaptureLog:
    options: dict = {"rate": 1.0, "model_rates": {}, "inputs": "full",
                     "max_array_bytes": 1024, "max_bytes": 64 * 1024, "backups": 1,
                     "queue_size": 4} | overrides
    return CaptureLog(path, **options)


def _stages() -> RequestStages:
    stages = RequestStages(0.0, "POST /v1/digit:predict", "rid")
    stages.inputs = {"x": np.arange(4, dtype=np.float32)}
    stages.outputs = {"y": np.ones((1, 2), dtype=np.float32)}
    return stages


def test_a_stalled_writer_never_blocks_the_request_path(tmp_path: Path) -> None:
    metrics = Metrics()
    capture = _log(tmp_path / "c.jsonl", queue_size=4, metrics=metrics)
    capture._file.acquire()  # the disk stalls: the writer blocks on its first record
    try:
        started = time.perf_counter()
        for _ in range(50):
            capture.offer(_stages(), "digit", "1", "rest", "OK", 0.001)
        elapsed = time.perf_counter() - started
        # One record in the writer's hands, four queued, the rest dropped and counted.
        deadline = time.monotonic() + 5
        while capture.dropped < 45 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert capture.dropped in (45, 46)
        assert metrics.capture_dropped._value.get() == capture.dropped
    finally:
        capture._file.release()
    assert elapsed < 0.5  # 50 offers; a blocking put would wait for the disk
    capture.flush()
    assert capture.written == 50 - capture.dropped
    capture.close()
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert len(lines) == capture.written


def test_record_fields_and_sampling(tmp_path: Path) -> None:
    capture = _log(tmp_path / "c.jsonl", rate=0.0, model_rates={"digit": 1.0},
                   queue_size=100)
    stages = _stages()
    stages.ran_in(7, 3, 2, 1.0, 1.5)
    capture.offer(stages, "digit", "1", "grpc", "OK", 0.0025)
    for _ in range(20):
        capture.offer(_stages(), "text", "1", "rest", "OK", 0.001)  # rate 0
    capture.close()
    (line,) = (tmp_path / "c.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "rid" and record["protocol"] == "grpc"
    assert record["latency_ms"] == 2.5
    assert record["batch"] == {"id": 7, "rows": 3, "requests": 2}
    assert record["inputs"]["x"] == {"dtype": "float32", "shape": [4],
                                     "data": [0.0, 1.0, 2.0, 3.0]}
    assert record["outputs"]["y"]["data"] == [[1.0, 1.0]]


def test_sampling_rate_is_honoured(tmp_path: Path) -> None:
    capture = _log(tmp_path / "c.jsonl", rate=0.25, queue_size=10_000,
                   max_bytes=16 * 1024 * 1024)
    for _ in range(4000):
        capture.offer(None, "digit", "1", "rest", "OK", 0.001)
    capture.close()
    written = len((tmp_path / "c.jsonl").read_text().splitlines())
    assert written == capture.written
    assert 800 < written < 1200  # 1000 expected; 6 standard deviations either side


def test_a_record_never_outgrows_a_file(tmp_path: Path) -> None:
    capture = _log(tmp_path / "c.jsonl", max_array_bytes=10**9, max_bytes=64 * 1024)
    stages = _stages()
    stages.inputs = {"x": np.zeros(100_000, dtype=np.float32)}
    capture.offer(stages, "digit", "1", "rest", "OK", 0.001)
    capture.close()
    (line,) = (tmp_path / "c.jsonl").read_text().splitlines()
    assert len(line) < 64 * 1024
    assert json.loads(line)["inputs"] == {"omitted": "record over 65536 bytes"}


def test_summary_of_text_and_numbers() -> None:
    assert summary(np.array([b"a", b"bc"], dtype=object)) == {"dtype": "BYTES", "shape": [2]}
    assert summary(np.array([[1, 3]], dtype=np.int64)) == {
        "dtype": "int64", "shape": [1, 2], "min": 1.0, "max": 3.0, "mean": 2.0}


def test_server_timing_lists_the_stages_reached() -> None:
    stages = RequestStages(10.0, "POST /x")
    assert stages.server_timing().startswith("receive;dur=0.000, total;dur=")
    stages.received, stages.enqueued = 10.001, 10.003
    stages.ran_in(1, 4, 2, 10.004, 10.010)
    stages.run_start, stages.run_end = 10.005, 10.009
    stages.done = 10.012
    assert stages.server_timing() == (
        'receive;dur=1.000, decode;dur=2.000, queue;dur=1.000, '
        'batch;desc="rows=4 requests=2";dur=6.000, inference;dur=4.000, encode;dur=2.000, '
        'total;dur=12.000')


def test_server_timing_of_a_request_whose_deadline_passed_while_a_batch_ran() -> None:
    """Run times stamped but no batch of its own (it left the queue at its deadline): the
    stages it reached, not an error (this answered 500 once)."""
    stages = RequestStages(10.0, "POST /x")
    stages.received = 10.001
    stages.run_start, stages.run_end = 10.002, 10.004
    stages.done = 10.005
    assert stages.server_timing() == "receive;dur=1.000, total;dur=5.000"


def test_queued_arrays_are_bounded_in_bytes(tmp_path: Path) -> None:
    capture = _log(tmp_path / "c.jsonl", queue_size=1000, queue_bytes=10 * 4096,
                   inputs="summary")
    capture._file.acquire()  # the disk stalls: records pile up in the queue
    try:
        for _ in range(40):
            stages = _stages()
            stages.inputs = {"x": np.zeros(1024, dtype=np.float32)}  # 4096 bytes
            stages.outputs = None
            capture.offer(stages, "image", "1", "rest", "OK", 0.001)
        # At most 10 records' arrays wait (one more in the writer's hands).
        assert capture.dropped >= 40 - 11
        assert capture._queued_bytes <= 10 * 4096
    finally:
        capture._file.release()
    capture.close()
    assert capture._queued_bytes == 0
    assert capture.written + capture.dropped == 40
