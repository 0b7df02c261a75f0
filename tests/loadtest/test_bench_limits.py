"""The benchmark's limits and its reading of them, on a tiny digit model.

The bare servers must do the work they claim (one ONNX Runtime call, the task
endpoint's answer, every gRPC message form), the streaming client must keep its
streams busy, and the targets must be read the way the issue states them: the worst
round for "in every round", each path against its own limit, client-bound points
flagged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest

from loadtest import bench_targets, grpc_client, grpc_messages
from loadtest.bare_grpc import BareGrpc
from loadtest.bare_http import BareAsgi
from loadtest.bare_model import OrtModel
from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb2
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2
from tests.fixtures.tiny_models import digit_reference

PIXELS = np.random.default_rng(0).random((1, 784)).round(4).astype(np.float32)


@pytest.fixture
def model(tiny_digit_path: Path) -> OrtModel:
    return OrtModel(tiny_digit_path)


@pytest.fixture
async def bare_grpc(model: OrtModel) -> AsyncIterator[str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((BareGrpc(model),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _probabilities(response: v2_pb2.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(1, 10)


async def test_bare_grpc_answers_every_message_form(bare_grpc: str):
    expected = digit_reference(PIXELS)
    async with grpc.aio.insecure_channel(bare_grpc) as channel:
        predict = grpc_messages.tfserving_predict("digit", "pixels", PIXELS)
        raw = await channel.unary_unary(predict.method)(predict.request.SerializeToString())
        out = predict_pb2.PredictResponse.FromString(raw).outputs["probabilities"]
        np.testing.assert_allclose(np.frombuffer(out.tensor_content, np.float32).reshape(1, 10),
                                   expected, rtol=1e-5)
        for as_raw in (False, True):
            call = grpc_messages.v2_infer("digit", "pixels", PIXELS, raw=as_raw)
            raw = await channel.unary_unary(call.method)(call.request.SerializeToString())
            np.testing.assert_allclose(_probabilities(v2_pb2.ModelInferResponse.FromString(raw)),
                                       expected, rtol=1e-5)
        stream = grpc_messages.v2_infer("digit", "pixels", PIXELS, raw=True, stream=True)
        call = channel.stream_stream(stream.method)(
            iter([stream.request.SerializeToString()] * 3))
        answers = [v2_pb2.ModelStreamInferResponse.FromString(a) async for a in call]
    assert len(answers) == 3
    for answer in answers:
        assert answer.error_message == ""
        np.testing.assert_allclose(_probabilities(answer.infer_response), expected, rtol=1e-5)


async def test_stream_client_keeps_its_streams_busy(bare_grpc: str):
    calls = [grpc_messages.v2_infer("digit", "pixels", PIXELS, raw=True, stream=True)]
    result = await grpc_client.run_closed_loop(bare_grpc, calls, concurrency=4, duration_s=0.5,
                                               warmup_s=0.1)
    assert result.errors == 0, result.error_samples
    assert len(result.latencies_ns) > 20


async def test_bare_asgi_answers_like_the_task_endpoint(model: OrtModel):
    transport = httpx.ASGITransport(app=BareAsgi(model))
    async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
        answer = (await client.post("/v1/digit:predict",
                                    content=orjson.dumps({"input": PIXELS[0].tolist()}))).json()
        bad = await client.post("/v1/digit:predict", content=b'{"input": [1, 2]}')
        empty = await client.get("/empty")
    expected = digit_reference(PIXELS)[0]
    assert answer["predictions"][0]["label"] == str(int(expected.argmax()))
    assert answer["predictions"][0]["probability"] == pytest.approx(float(expected.max()), 1e-5)
    assert [t["label"] for t in answer["predictions"][0]["top"]] == \
        [str(i) for i in np.argsort(expected)[::-1][:5]]
    assert bad.status_code == 400 and empty.json() == {}


def _row(protocol: str, payload: str, conc: int, rounds: list[float], *, p50: float = 1.0,
         p99: float = 10.0, client_bound: bool = False, us: float = 100.0) -> dict:
    return {"model": "digit", "protocol": protocol, "payload": payload, "concurrency": conc,
            "items_per_s": sum(rounds) / len(rounds), "rounds": rounds, "p50_ms": p50,
            "p99_ms": p99, "client_bound": client_bound, "server_us_per_item": us}


def _results(rows: list[dict], http_server: str = "uvicorn") -> dict:
    return {"rows": rows, "ceiling": {}, "server": {"startup_s": 1.0, "rss_mb": 100.0,
                                                    "http_server": http_server}}


def _verdicts(results: dict) -> dict[str, tuple[float, bool | None, str]]:
    return {t["target"]: (t["value"], t["pass"], t["note"])
            for t in bench_targets.targets(results)}


def test_naive_ratio_must_hold_in_every_round():
    rows = [_row("rest", "floats", 64, [4000, 3000, 5000]),
            _row("naive", "floats", 64, [1800, 1600, 2000])]
    verdicts = _verdicts(_results(rows))
    name = next(t for t in verdicts if t.startswith("task endpoint floats / naive"))
    assert "mean 2.22" in name  # 4000 / 1800: the means alone would pass
    assert verdicts[name][:2] == (1.88, False)  # round 2: 3000 / 1600


def test_each_path_is_read_against_its_own_limit():
    rows = [_row("rest", "floats", 64, [3000], us=200.0),
            _row("bare-asgi", "floats", 64, [3400], us=150.0),
            _row("bare-rsgi", "floats", 64, [6000]), _row("v2", "floats", 64, [2600]),
            _row("grpc-v2", "raw", 64, [1800]), _row("bare-grpc-infer", "raw", 64, [2100]),
            _row("grpc-v2", "contents", 64, [1700], client_bound=True),
            _row("bare-grpc-infer", "contents", 64, [1800]),
            _row("grpc-stream", "raw", 64, [3100]), _row("bare-grpc-stream", "raw", 64, [3500])]
    under_uvicorn = _verdicts(_results(rows))
    assert under_uvicorn["task endpoint floats / bare-asgi floats, c=64"][:2] == (0.882, True)
    by_cpu = {t["target"]: t.get("by_cpu") for t in bench_targets.targets(_results(rows))}
    assert by_cpu["task endpoint floats / bare-asgi floats, c=64"] == 0.75  # 150 / 200 µs
    assert under_uvicorn["task endpoint floats / bare-rsgi floats, c=64 (another server's "
                         "limit)"][1] is None
    assert under_uvicorn["v2 REST floats / task endpoint floats, c=64"][:2] == (0.867, False)
    assert under_uvicorn["grpc-v2 raw / bare-grpc-infer, c=64"][:2] == (0.857, False)
    assert under_uvicorn["grpc-v2 contents / bare-grpc-infer, c=64"] == \
        (0.944, True, "client-bound: grpc-v2 contents")
    assert under_uvicorn["ModelStreamInfer 64 streams / task endpoint floats c=64"][:2] == \
        (1.033, True)
    under_granian = _verdicts(_results(rows, "granian"))
    assert under_granian["task endpoint floats / bare-rsgi floats, c=64"][:2] == (0.5, False)


def test_latency_targets_compare_like_with_like():
    rows = [_row("rest", "ints", 1, [900], p50=0.6), _row("bare-asgi", "ints", 1, [2000], p50=0.4),
            _row("grpc-tfserving", "tensor_content", 1, [700], p50=1.2),
            _row("bare-grpc-predict", "tensor_content", 1, [900], p50=0.8),
            _row("rest", "ints", 64, [3000], p99=30.0), _row("naive", "ints", 64, [1000], p99=60.0),
            _row("grpc-tfserving", "tensor_content", 64, [2000], p99=70.0),
            _row("naive", "floats", 64, [900], p99=65.0)]
    verdicts = _verdicts(_results(rows))
    assert verdicts["p50 c=1 rest ints (ms) vs bare-asgi + 0.3"][:2] == (0.6, True)
    assert verdicts["p50 c=1 grpc-tfserving tensor_content (ms) vs bare-grpc-predict + 0.3"][
        :2] == (1.2, False)
    assert verdicts["p99 c=64 rest ints (ms) vs naive ints"][:2] == (30.0, True)
    assert verdicts["p99 c=64 grpc-tfserving tensor_content (ms) vs naive floats"][:2] == \
        (70.0, False)
