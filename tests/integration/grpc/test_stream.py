"""ModelStreamInfer over a real grpc.aio server: batching, ids, errors, back-pressure, cancel.

The model is held busy (hold_model_busy) so that the requests of a stream visibly
queue in the batcher together: that is what proves they are in flight at once and
batched with each other and with unary calls, and that the in-flight bound holds.
"""

from __future__ import annotations

import asyncio

import numpy as np

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.tiny_models import digit_reference
from tests.integration.grpc.helpers import digits
from tests.integration.grpc.test_behaviour import RecordingObserver


def _request(request_id: str, n: int = 1, seed: int = 0, model: str = "digit",
             width: int = 784) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    request.inputs.add(name="pixels", datatype="FP32", shape=[n, width])
    request.raw_input_contents.append(digits(n, seed)[:, :width].tobytes())
    return request


def _probabilities(response: pb.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(
        list(response.outputs[0].shape))


async def _plugged(app, hold_model_busy):
    """The digit model busy with a plug request (dispatched, stuck): later ones queue."""
    served = app.dataplane.model("digit")
    recorder = RecordingObserver(served.batcher.observer)
    served.batcher.observer = recorder
    busy = hold_model_busy(served)
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    plug = asyncio.ensure_future(stub.ModelInfer(_request("plug")))
    await busy.wait_queued(0)
    await asyncio.sleep(0.05)
    return stub, busy, plug, recorder


async def test_stream_requests_batch_together_and_with_unary_calls(grpc_app, hold_model_busy):
    stub, busy, plug, recorder = await _plugged(grpc_app, hold_model_busy)
    call = stub.ModelStreamInfer()
    for i in range(4):
        await call.write(_request(f"s{i}", seed=i))
    unary = asyncio.ensure_future(stub.ModelInfer(_request("u", seed=9)))
    await busy.wait_queued(5)  # four from the stream, in flight at once, and the unary call
    busy.release()
    answers = [await call.read() for _ in range(4)]
    await call.done_writing()
    assert await call.code() == pb_grpc.grpc.StatusCode.OK
    await plug
    assert (await unary).id == "u"
    assert recorder.sizes == [1, 5]  # the plug alone, then the stream and the unary call
    by_id = {a.infer_response.id: a for a in answers}
    assert sorted(by_id) == ["s0", "s1", "s2", "s3"]
    for i in range(4):
        answer = by_id[f"s{i}"]
        assert answer.error_message == ""
        assert answer.infer_response.model_name == "digit"
        np.testing.assert_allclose(_probabilities(answer.infer_response),
                                   digit_reference(digits(1, i)), rtol=1e-5)


async def test_a_failed_request_is_answered_and_the_stream_goes_on(grpc_app):
    stub = pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    requests = [_request("ok1"), _request("bad-model", model="nope"),
                _request("bad-shape", width=783), _request("ok2", n=2, seed=3)]
    call = stub.ModelStreamInfer(iter(requests))
    answers = {a.infer_response.id: a async for a in call}
    assert await call.code() == pb_grpc.grpc.StatusCode.OK
    assert sorted(answers) == ["bad-model", "bad-shape", "ok1", "ok2"]
    assert "nope" in answers["bad-model"].error_message
    assert answers["bad-model"].infer_response.model_name == "nope"
    assert "784" in answers["bad-shape"].error_message
    assert answers["ok1"].error_message == answers["ok2"].error_message == ""
    np.testing.assert_allclose(_probabilities(answers["ok2"].infer_response),
                               digit_reference(digits(2, 3)), rtol=1e-5)


async def test_in_flight_requests_per_stream_are_bounded(make_grpc_app, hold_model_busy):
    app = await make_grpc_app(grpc_stream_max_in_flight=2)
    stub, busy, plug, _ = await _plugged(app, hold_model_busy)
    call = stub.ModelStreamInfer(iter([_request(f"r{i}", seed=i) for i in range(5)]))
    await busy.wait_queued(2)
    await asyncio.sleep(0.2)  # the other three stay unread while two are in flight
    assert app.dataplane.model("digit").batcher.queue_depth == 2
    busy.release()
    answers = [a async for a in call]
    await plug
    assert sorted(a.infer_response.id for a in answers) == [f"r{i}" for i in range(5)]
    assert all(a.error_message == "" for a in answers)


async def test_a_cancelled_stream_leaves_the_batch_queue(grpc_app, hold_model_busy):
    stub, busy, plug, recorder = await _plugged(grpc_app, hold_model_busy)
    call = stub.ModelStreamInfer()
    for i in range(3):
        await call.write(_request(f"c{i}", seed=i))
    await busy.wait_queued(3)
    call.cancel()
    await busy.wait_queued(0)
    busy.release()
    await plug
    assert recorder.sizes == [1]  # nothing computed for the cancelled stream's requests
    response = await stub.ModelInfer(_request("after", n=2), timeout=5)
    assert list(response.outputs[0].shape) == [2, 10]


async def test_bytes_in_flight_per_stream_are_bounded(make_grpc_app, hold_model_busy):
    """One-digit requests are about 3.2 kB: two fit in 8 kB, the third waits unread."""
    app = await make_grpc_app(grpc_stream_bytes_in_flight=8192)
    stub, busy, plug, _ = await _plugged(app, hold_model_busy)
    assert 3000 < _request("x").ByteSize() < 4000
    call = stub.ModelStreamInfer(iter([_request(f"b{i}", seed=i) for i in range(4)]),
                                 metadata=(("x-request-id", "stream-7"),))
    await busy.wait_queued(2)
    await asyncio.sleep(0.2)
    assert app.dataplane.model("digit").batcher.queue_depth == 2
    busy.release()
    answers = [a async for a in call]
    await plug
    assert sorted(a.infer_response.id for a in answers) == ["b0", "b1", "b2", "b3"]
    assert ("x-request-id", "stream-7") in tuple(await call.trailing_metadata())


async def test_a_request_larger_than_the_byte_bound_runs_alone(make_grpc_app):
    app = await make_grpc_app(grpc_stream_bytes_in_flight=4096)
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    call = stub.ModelStreamInfer(iter([_request("big", n=4), _request("small")]))
    answers = {a.infer_response.id: a async for a in call}
    assert sorted(answers) == ["big", "small"]
    assert list(answers["big"].infer_response.outputs[0].shape) == [4, 10]
