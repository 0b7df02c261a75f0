"""Server-Timing, trace spans, request capture and the operator metrics on real servers
(REST and gRPC in one process, serving/server.py) over the tiny models."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from serving.grpc.generated.tensorflow_serving.apis import prediction_service_pb2_grpc
from tests.integration.grpc.helpers import digits, predict_request

STAGES = ["receive", "decode", "queue", "batch", "inference", "encode"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
DIGIT = {"inputs": [[0.5] * 784]}


def _timing(header: str) -> dict[str, dict[str, str]]:
    """Server-Timing → {metric: {param: value}} (RFC 8941-ish, as browsers parse it)."""
    found = {}
    for part in header.split(", "):
        name, *params = part.split(";")
        found[name] = dict(p.split("=", 1) for p in params)
    return found


def _in_memory_tracing(process: Any) -> InMemorySpanExporter:
    """Trace the server's requests into memory (what an OTLP endpoint would receive)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    process.dataplane.tracing.use(provider)
    return exporter


async def test_server_timing_names_every_stage(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server()
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        for path, body in (("/v1/digit:predict", DIGIT),
                           ("/v1/models/digit:predict", {"instances": [[0.5] * 784]})):
            resp = await client.post(path, json=body)
            assert resp.status_code == 200, resp.text
            timing = _timing(resp.headers["server-timing"])
            assert list(timing) == [*STAGES, "total"], path
            durations = {k: float(v["dur"]) for k, v in timing.items()}
            assert all(d >= 0 for d in durations.values())
            assert sum(durations[s] for s in STAGES if s != "inference") <= \
                durations["total"] + 0.01
            assert timing["batch"]["desc"] == '"rows=1 requests=1"'
        # A refusal before any model was involved has no stages to show.
        resp = await client.post("/v1/digit:predict", content=b"{", headers={
            "content-type": "application/json"})
        assert resp.status_code == 400 and "server-timing" not in resp.headers
        # Health and metrics are not inference.
        assert "server-timing" not in (await client.get("/v2/health/ready")).headers


async def test_server_timing_can_be_switched_off(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server(server_timing=False)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        resp = await client.post("/v1/digit:predict", json=DIGIT)
    assert resp.status_code == 200 and "server-timing" not in resp.headers


async def test_tracing_is_off_without_an_endpoint(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server()
    assert not server.process.dataplane.tracing.enabled
    assert server.process.dataplane.tracing.tracer is None


async def test_rest_spans_follow_traceparent(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server()
    exporter = _in_memory_tracing(server.process)
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-request-id": "trace-me"}
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        resp = await client.post("/v1/digit:predict", json=DIGIT, headers=headers)
        assert resp.status_code == 200
        # The ASGI lane (a CORS-less server answers the route on its protocol lane; a
        # TF Serving route always takes the ASGI path).
        resp = await client.post("/v1/models/digit:predict",
                                 json={"instances": [[0.5] * 784] * 3})
        assert resp.status_code == 200
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name.startswith("POST ")]
    assert [r.name for r in roots] == ["POST /v1/digit:predict", "POST /v1/models/digit:predict"]
    task_root, tfs_root = roots
    assert f"{task_root.context.trace_id:032x}" == TRACE_ID
    assert task_root.parent is not None and f"{task_root.parent.span_id:016x}" == PARENT_ID
    assert task_root.attributes["modelserve.model"] == "digit"
    assert task_root.attributes["modelserve.version"] == "1"
    assert task_root.attributes["modelserve.request_id"] == "trace-me"
    assert task_root.attributes["modelserve.status"] == "OK"
    assert tfs_root.parent is None  # no traceparent: a trace of its own
    for root in roots:
        children = sorted((s for s in spans if s.parent is not None
                           and s.parent.span_id == root.context.span_id),
                          key=lambda s: s.start_time)
        assert [c.name for c in children] == [s for s in STAGES if s != "inference"]
        batch = children[3]
        inference = [s for s in spans if s.parent is not None
                     and s.parent.span_id == batch.context.span_id]
        assert [s.name for s in inference] == ["inference"]
        assert root.start_time <= children[0].start_time
        assert children[-1].end_time <= root.end_time
        for earlier, later in itertools.pairwise(children):
            assert earlier.end_time <= later.start_time
    tfs_batch = next(s for s in spans if s.name == "batch"
                     and s.parent.span_id == tfs_root.context.span_id)
    assert tfs_batch.attributes["modelserve.batch.size"] == 3
    assert tfs_batch.attributes["modelserve.batch.requests"] == 1


async def test_failed_request_span_is_an_error(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server()
    exporter = _in_memory_tracing(server.process)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        resp = await client.post("/v1/digit:predict", json={"inputs": [[0.5] * 3]})
    assert resp.status_code == 400
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("POST "))
    assert root.attributes["modelserve.status"] == "INVALID_ARGUMENT"
    assert root.status.status_code.name == "ERROR"


async def test_grpc_spans_follow_metadata(make_full_server: Callable[..., Any]) -> None:
    server = await make_full_server()
    exporter = _in_memory_tracing(server.process)
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        await stub.Predict(predict_request("digit", {"pixels": digits(2)}),
                           metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),))
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "grpc PredictionService/Predict")
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    assert f"{root.parent.span_id:016x}" == PARENT_ID
    names = {s.name for s in spans if s.context.trace_id == root.context.trace_id}
    assert set(STAGES) <= names


def _captured(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.parent.glob(path.name + "*"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


async def test_capture_records_sampled_requests(make_full_server: Callable[..., Any],
                                                tmp_path: Path) -> None:
    path = tmp_path / "capture" / "requests.jsonl"
    server = await make_full_server(capture_path=path, capture_rate=1.0, capture_inputs="full",
                                    capture_model_rates={"text": 0.0})
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        answered = await client.post("/v1/digit:predict", json=DIGIT,
                                     headers={"x-request-id": "cap-1"})
        assert answered.status_code == 200
        assert (await client.post("/v1/text:predict", json={"text": "fine"})).status_code == 200
        resp = await client.post("/v1/models/digit:predict",
                                 json={"instances": [[0.25] * 784] * 2})
        assert resp.status_code == 200
        bad = await client.post("/v1/digit:predict", json={"inputs": [[1.0] * 5]})
        assert bad.status_code == 400
    capture = server.process.dataplane.capture
    capture.flush()
    records = _captured(path)
    assert [r["model"] for r in records] == ["digit", "digit", "digit"]  # text: rate 0
    task, tensors, refused = records
    assert task["request_id"] == "cap-1" and task["status"] == "OK"
    assert task["version"] == "1" and task["protocol"] == "rest"
    assert task["batch"]["rows"] == 1 and task["batch"]["id"] >= 1
    assert task["latency_ms"] > 0
    assert task["inputs"]["pixels"]["shape"] == [1, 784]
    assert np.allclose(task["inputs"]["pixels"]["data"], [[0.5 / 255.0] * 784], atol=1e-3) or \
        np.allclose(task["inputs"]["pixels"]["data"], [[0.5] * 784])
    assert task["outputs"][0]["label"] == answered.json()["predictions"][0]["label"]
    assert tensors["outputs"]["probabilities"]["shape"] == [2, 10]
    assert tensors["batch"]["rows"] == 2
    assert refused["status"] == "INVALID_ARGUMENT" and "batch" not in refused


async def test_capture_without_raw_inputs(make_full_server: Callable[..., Any],
                                          tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    server = await make_full_server(capture_path=path, capture_rate=1.0, capture_inputs="none")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        assert (await client.post("/v1/digit:predict", json=DIGIT)).status_code == 200
    server.process.dataplane.capture.flush()
    (record,) = _captured(path)
    assert "inputs" not in record and "outputs" in record
    # Nothing of the 784 numbers anywhere in the file (a record is far smaller).
    assert len(path.read_text()) < 2000


async def test_capture_summarises_large_inputs(make_full_server: Callable[..., Any],
                                               tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    server = await make_full_server(capture_path=path, capture_rate=1.0, capture_inputs="full",
                                    capture_max_array_bytes=1000)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        resp = await client.post("/v1/models/digit:predict", json={"instances": [[0.5] * 784]})
        assert resp.status_code == 200
    server.process.dataplane.capture.flush()
    (record,) = _captured(path)
    assert record["inputs"]["pixels"] == {"dtype": "float32", "shape": [1, 784],
                                          "min": 0.5, "max": 0.5, "mean": 0.5}
    assert "data" in record["outputs"]["probabilities"]  # 40 bytes: whole


async def test_capture_disk_use_is_bounded(make_full_server: Callable[..., Any],
                                           tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    max_bytes, backups = 64 * 1024, 2
    server = await make_full_server(capture_path=path, capture_rate=1.0, capture_inputs="full",
                                    capture_max_bytes=max_bytes, capture_backups=backups)
    body = {"instances": [[0.123456] * 784] * 2}  # about 20 kB per record
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        for _ in range(40):
            assert (await client.post("/v1/models/digit:predict", json=body)).status_code == 200
    capture = server.process.dataplane.capture
    capture.flush()
    files = sorted(tmp_path.glob("requests.jsonl*"))
    assert len(files) == backups + 1
    assert all(f.stat().st_size <= max_bytes for f in files)
    assert capture.written + capture.dropped == 40


async def test_rejections_by_reason(make_full_server: Callable[..., Any],
                                    hold_model_busy: Callable[[Any], Any]) -> None:
    server = await make_full_server(
        inline_batch_max_ms=0.0,
        model_batching={"digit": {"max_queue_size": 3, "max_batch_size": 4}})
    served = server.process.dataplane.model("digit")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        # too large: more items than the largest batch
        resp = await client.post("/v1/digit:predict", json={"inputs": [[0.5] * 784] * 5})
        assert resp.status_code == 400
        busy = hold_model_busy(served)
        # The plug is dispatched and stuck behind the busy model; the next two queue.
        plug = asyncio.create_task(client.post("/v1/digit:predict", json=DIGIT))
        await busy.wait_queued(0)
        await asyncio.sleep(0.05)
        waiting = [plug, *(asyncio.create_task(client.post("/v1/digit:predict", json=DIGIT))
                           for _ in range(2))]
        await busy.wait_queued(2)
        late = asyncio.create_task(client.post("/v1/digit:predict", json=DIGIT, headers={
            "request-timeout": "0.5"}))  # its deadline passes in the queue
        await busy.wait_queued(3)
        full = await client.post("/v1/digit:predict", json=DIGIT)  # the queue is full
        assert full.status_code == 503
        assert (await late).status_code == 504
        busy.release()
        assert all(r.status_code == 200 for r in await asyncio.gather(*waiting))
        text = (await client.get("/metrics")).text
    samples = _samples(text)
    counts = {labels["reason"]: value for name, labels, value in samples
              if name == "modelserve_rejections_total" and labels["model"] == "digit"
              and labels["version"] == "1" and labels["label"] == ""}
    assert counts == {"too_large": 1.0, "queue_full": 1.0, "deadline": 1.0}
    sizes = {labels["le"]: value for name, labels, value in samples
             if name == "modelserve_batch_size_bucket" and labels["model"] == "digit"}
    # The plug ran alone (1 row), then the two queued requests together (2 rows): the
    # fill ratio (batch size over max_batch_size, as the dashboard computes it) 1/4, 2/4.
    assert sizes["1.0"] == 1 and sizes["2.0"] == 2
    (largest,) = [value for name, labels, value in samples
                  if name == "modelserve_max_batch_size" and labels["model"] == "digit"]
    assert largest == 4


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


@pytest.mark.parametrize("rate", [0.0])
async def test_capture_rate_zero_writes_nothing(make_full_server: Callable[..., Any],
                                                tmp_path: Path, rate: float) -> None:
    path = tmp_path / "requests.jsonl"
    server = await make_full_server(capture_path=path, capture_rate=rate)
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        assert (await client.post("/v1/digit:predict", json=DIGIT)).status_code == 200
    server.process.dataplane.capture.flush()
    assert _captured(path) == []


class _Collector:
    """A minimal OTLP/HTTP receiver on 127.0.0.1: keeps each POSTed export request."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append((self.path, self.headers.get("content-type"), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_spans_are_exported_by_otlp(make_full_server: Callable[..., Any]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    collector = _Collector()
    try:
        server = await make_full_server(otlp_endpoint=collector.url,
                                        trace_service_name="modelserve-test")
        assert server.process.dataplane.tracing.enabled
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            resp = await client.post("/v1/digit:predict", json=DIGIT, headers={
                "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
            assert resp.status_code == 200
        # The batch processor exports from its own thread; a flush sends what it holds.
        await asyncio.to_thread(server.process.dataplane.tracing.provider.force_flush)
    finally:
        collector.close()
    spans = []
    for path, content_type, body in collector.received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value
                          for a in resource_spans.resource.attributes}
            assert attributes["service.name"] == "modelserve-test"
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert {s.name for s in spans} == {"POST /v1/digit:predict", *STAGES}
    assert {s.trace_id.hex() for s in spans} == {TRACE_ID}
