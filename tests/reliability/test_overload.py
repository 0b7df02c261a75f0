"""Overload and deadlines: disconnected clients and tiny deadlines leave the batch queue
without wedging it, deadlines count from arrival, per-model queue limits answer 503
with Retry-After at once, and under 4x the sustainable load the server keeps answering
(fast rejections, bounded latency for the admitted) and recovers."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import grpc
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.servers import wait_ready
from tests.fixtures.tiny_models import IR_VERSION, OPSET, write_model_version
from tests.integration.rest.images import solid_rgb
from tests.reliability.conftest import percentile

IMAGE = solid_rgb(200, 10, 10, size=64)
ZERO_DIGIT = {"input": [0.0] * 784}


def _counter(metrics: str, status: str) -> float:
    pattern = rf'modelserve_requests_total\{{[^}}]*status="{status}"[^}}]*\}} ([0-9.e+]+)'
    return sum(float(v) for v in re.findall(pattern, metrics))


async def test_disconnected_rest_clients_leave_the_queue(make_server, hold_model_busy, report):
    server = await make_server(inline_batch_max_ms=0.0)
    served = server.process.registry.get("image")
    busy = hold_model_busy(served)
    client = httpx.AsyncClient(base_url=server.url, timeout=30)
    headers = {"content-type": "image/png"}
    def send() -> asyncio.Task[httpx.Response]:
        return asyncio.create_task(client.post("/v1/image:predict", content=IMAGE,
                                               headers=headers))
    waiting = [send()]
    async with asyncio.timeout(5):  # the first is taken by the (blocked) worker ...
        while not served.batcher.in_flight:
            await asyncio.sleep(0.005)
    waiting += [send() for _ in range(5)]
    await busy.wait_queued(5)  # ... and five wait in the queue
    depth_before = served.batcher.queue_depth
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    await client.aclose()  # the connections close: the server sees the disconnects
    start = time.monotonic()
    async with asyncio.timeout(5):
        while served.batcher.queue_depth:
            await asyncio.sleep(0.01)
    emptied_s = time.monotonic() - start
    busy.release()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as fresh:
        after = await fresh.post("/v1/image:predict", content=IMAGE, headers=headers)
        metrics = (await fresh.get("/metrics")).text
    report("disconnects", queued_before=depth_before, disconnected=6, queue_emptied_s=emptied_s,
           cancelled_counted=_counter(metrics, "CANCELLED"), next_request=after.status_code)
    assert after.status_code == 200
    assert _counter(metrics, "CANCELLED") == 6


async def test_tiny_deadlines_do_not_wedge_the_batcher(make_server, report):
    server = await make_server(inline_batch_max_ms=0.0)
    codes: Counter[str] = Counter()
    pixels = np.zeros((1, 784), np.float32)

    async def rest(client: httpx.AsyncClient, timeout: str) -> None:
        resp = await client.post("/v1/digit:predict", json=ZERO_DIGIT,
                                 headers={"Request-Timeout": timeout})
        codes[f"rest {resp.status_code}"] += 1

    async def grpc_call(stub: pb_grpc.GRPCInferenceServiceStub, timeout: float) -> None:
        request = pb.ModelInferRequest(model_name="digit", raw_input_contents=[
            pixels.tobytes()], inputs=[pb.ModelInferRequest.InferInputTensor(
                name="pixels", datatype="FP32", shape=[1, 784])])
        try:
            await stub.ModelInfer(request, timeout=timeout)
            codes["grpc OK"] += 1
        except grpc.aio.AioRpcError as exc:
            codes[f"grpc {exc.code().name}"] += 1

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client, \
            grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(5):  # bursts of tiny and normal deadlines, mixed
            calls = [rest(client, "0.0005") for _ in range(40)]
            calls += [grpc_call(stub, 0.0005) for _ in range(40)]
            calls += [rest(client, "5") for _ in range(10)]
            calls += [grpc_call(stub, 5) for _ in range(10)]
            await asyncio.gather(*calls)
        batcher = server.process.registry.get("digit").batcher
        left = (batcher.queue_depth, batcher.in_flight)
        after = await client.post("/v1/digit:predict", json=ZERO_DIGIT)
    report("tiny deadlines", sent=sum(codes.values()), outcomes=dict(codes),
           queue_and_in_flight_after=left, next_request=after.status_code)
    assert set(codes) <= {"rest 200", "rest 504", "grpc OK", "grpc DEADLINE_EXCEEDED"}
    assert codes["rest 504"] > 0 and codes["grpc DEADLINE_EXCEEDED"] > 0
    assert codes["rest 200"] >= 50 and codes["grpc OK"] >= 50  # the normal ones all answered
    assert left == (0, 0) and after.status_code == 200


async def test_deadline_counts_from_arrival_not_from_the_parsed_body(make_server, report):
    server = await make_server()

    async def slow_body():
        body = b'{"input": [' + b",".join(b"0" for _ in range(784)) + b"]}"
        for i in range(0, len(body), len(body) // 5 + 1):
            yield body[i:i + len(body) // 5 + 1]
            await asyncio.sleep(0.1)

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        start = time.perf_counter()
        late = await client.post("/v1/digit:predict", content=slow_body(), headers={
            "content-type": "application/json", "Request-Timeout": "0.3"})
        took = time.perf_counter() - start
        in_time = await client.post("/v1/digit:predict", content=slow_body(), headers={
            "content-type": "application/json", "Request-Timeout": "3"})
    report("deadline from arrival", upload_s=took, timeout_s=0.3, status=late.status_code,
           same_upload_with_3s=in_time.status_code)
    assert late.status_code == 504 and in_time.status_code == 200


def heavy_model(layers: int) -> onnx.ModelProto:
    """pixels [N, 784] -> probabilities [N, 10] through ``layers`` 3x3 convolutions of 64
    channels at 28x28 (~58 MFLOP per row each): a model with a real, steady compute cost."""
    rng = np.random.default_rng(0)
    weights = {"w_first": rng.standard_normal((64, 1, 3, 3)) / 3,
               "w_conv": rng.standard_normal((64, 64, 3, 3)) / 24,
               "w_out": rng.standard_normal((64, 10)),
               "shape": np.array([-1, 1, 28, 28])}
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Reshape", ["pixels", "shape"], ["x"]),
             helper.make_node("Conv", ["x", "w_first"], ["c0"], **conv),
             helper.make_node("Relu", ["c0"], ["h0"])]
    for i in range(layers):
        nodes += [helper.make_node("Conv", [f"h{i}", "w_conv"], [f"c{i + 1}"], **conv),
                  helper.make_node("Relu", [f"c{i + 1}"], [f"h{i + 1}"])]
    nodes += [helper.make_node("GlobalAveragePool", [f"h{layers}"], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["features"]),
              helper.make_node("MatMul", ["features", "w_out"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes, "heavy_digit",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v.astype(np.int64 if k == "shape" else np.float32), k)
         for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


async def closed_loop(url: str, clients: int, seconds: float) -> tuple[float, Counter[int]]:
    """Sustainable throughput: ``clients`` callers back to back for ``seconds``."""
    codes: Counter[int] = Counter()
    stop_at = time.monotonic() + seconds

    async def caller(client: httpx.AsyncClient) -> None:
        for _ in range(10_000):
            if time.monotonic() >= stop_at:
                return
            codes[(await client.post("/v1/digit:predict", json=ZERO_DIGIT)).status_code] += 1

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = time.monotonic()
        await asyncio.gather(*(caller(client) for _ in range(clients)))
        return codes[200] / (time.monotonic() - start), codes


async def open_loop(url: str, rate: float, seconds: float) -> list[tuple[int, float, str]]:
    """Requests sent at ``rate``/s whatever the answers: (status, seconds, Retry-After)."""
    results: list[tuple[int, float, str]] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)

    async def one(client: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        try:
            resp = await client.post("/v1/digit:predict", json=ZERO_DIGIT)
            results.append((resp.status_code, time.perf_counter() - start,
                            resp.headers.get("retry-after", "")))
        except httpx.HTTPError:
            results.append((0, time.perf_counter() - start, ""))

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client)))
        await asyncio.gather(*tasks)
    return results


@pytest.mark.slow
async def test_four_times_the_sustainable_load(start_server_process, tmp_path, report):
    repo = tmp_path / "heavy"
    write_model_version(repo, "digit", 1, heavy_model(layers=40), task="digit",
                        preprocessing={"size": 28}, batching={
                            "max_batch_size": 4, "max_queue_size": 8,
                            "max_queue_delay_ms": 2})
    server = start_server_process(repo, "--grpc-port", "-1", "--intra-op-threads", "1",
                                  "--warmup-batch-sizes", "1,4", "--drain-seconds", "0")
    await wait_ready(server.url, timeout_s=60)
    sustainable, calib = await closed_loop(server.url, clients=4, seconds=3)
    rate = 4 * sustainable
    results = await open_loop(server.url, rate, seconds=4)
    recovered, after = await closed_loop(server.url, clients=2, seconds=2)
    ok = [t for code, t, _ in results if code == 200]
    rejected = [(t, ra) for code, t, ra in results if code == 503]
    other = Counter(code for code, _, _ in results if code not in (200, 503))
    report("tried", sustainable_rps=sustainable, calibration=dict(calib), offered_rps=rate,
           offered=len(results), model="40 convs of 64ch at 28x28, batch<=4, queue<=8 rows")
    report("happened", admitted=len(ok), rejected_503=len(rejected), other=dict(other),
           admitted_p50_ms=percentile(ok, 50) * 1000, admitted_p99_ms=percentile(ok, 99) * 1000,
           rejected_p50_ms=percentile([t for t, _ in rejected], 50) * 1000,
           rejected_p99_ms=percentile([t for t, _ in rejected], 99) * 1000,
           retry_after=sorted({ra for _, ra in rejected}))
    report("recovery", rps=recovered, outcomes=dict(after))
    assert not other, other
    assert rejected and all(ra == "1" for _, ra in rejected)
    assert len(ok) >= 0.5 * sustainable * 4  # it kept serving near its capacity
    # Rejections are immediate: they do not wait for a place in the queue. Compared with
    # the admitted requests, not with a fixed limit: the open-loop client shares the two
    # cores, so its own lag moves both (docs/reliability.md: rejected p99 37 ms, admitted p50
    # 414 ms; with other suites running, p50s of 440 ms and 1430 ms). A rejection that waited
    # would take about as long as an admission.
    rejected_p50 = percentile([t for t, _ in rejected], 50)
    assert rejected_p50 < 0.5 * percentile(ok, 50)
    # A bounded queue bounds the admitted latency: unbounded, 4 s at 4x would queue
    # ~3 s of the offered load (~12 s of waiting); here the queue holds 8 rows (~0.2 s).
    assert percentile(ok, 99) < 5.0
    assert set(after) == {200} and recovered > 0.5 * sustainable
