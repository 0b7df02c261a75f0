"""Deadlines, cancellation, overload, message limits, shared batches, metrics, API keys."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.grpc.generated.tensorflow_serving.apis import prediction_service_pb2_grpc
from tests.integration.grpc.helpers import digits, predict_request
from tests.integration.rest.images import solid_rgb


class RecordingObserver:
    """Wraps a batcher's observer and records every batch size."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def queue_depth(self, rows):
        if self.inner is not None:
            self.inner.queue_depth(rows)

    def batch_done(self, size, queue_s, compute_s):
        self.sizes.append(size)
        if self.inner is not None:
            self.inner.batch_done(size, queue_s, compute_s)


def _v2_request(n: int = 1, seed: int = 0) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="digit")
    request.inputs.add(name="pixels", datatype="FP32", shape=[n, 784])
    request.raw_input_contents.append(digits(n, seed).tobytes())
    return request


async def test_rest_and_grpc_requests_share_a_batch(grpc_app, hold_model_busy):
    served = grpc_app.dataplane.model("digit")
    recorder = RecordingObserver(served.batcher.observer)
    served.batcher.observer = recorder
    stub = pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    busy = hold_model_busy(served)
    plug = asyncio.ensure_future(stub.ModelInfer(_v2_request()))  # dispatched, stuck behind busy
    await busy.wait_queued(0)
    await asyncio.sleep(0.05)
    via_grpc = asyncio.ensure_future(stub.ModelInfer(_v2_request(seed=1)))
    via_rest = asyncio.create_task(grpc_app.rest.post(
        "/v2/models/digit/infer", json={"inputs": [{"name": "pixels", "datatype": "FP32",
                                                    "shape": [1, 784],
                                                    "data": digits(1, 2).ravel().tolist()}]}))
    await busy.wait_queued(2)
    busy.release()
    await asyncio.gather(plug, via_grpc)
    assert (await via_rest).status_code == 200
    assert recorder.sizes == [1, 2]  # the plug alone, then REST + gRPC together


async def test_expired_deadline_is_dropped_from_the_queue(grpc_app, hold_model_busy):
    served = grpc_app.dataplane.model("digit")
    recorder = RecordingObserver(None)
    served.batcher.observer = recorder
    stub = pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    busy = hold_model_busy(served)
    plug = asyncio.ensure_future(stub.ModelInfer(_v2_request()))
    await asyncio.sleep(0.05)
    late = asyncio.ensure_future(stub.ModelInfer(_v2_request(), timeout=0.3))
    await busy.wait_queued(1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await late
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await busy.wait_queued(0)  # the server dropped it from the queue
    busy.release()
    await plug
    assert recorder.sizes == [1]  # nothing was computed for the expired request


async def test_client_cancellation_is_harmless(grpc_app, hold_model_busy):
    served = grpc_app.dataplane.model("digit")
    stub = pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    busy = hold_model_busy(served)
    plug = asyncio.ensure_future(stub.ModelInfer(_v2_request()))
    await asyncio.sleep(0.05)
    call = stub.ModelInfer(_v2_request(3))
    await busy.wait_queued(3)
    call.cancel()
    await busy.wait_queued(0)
    assert call.cancelled()
    busy.release()
    await plug
    response = await stub.ModelInfer(_v2_request(2), timeout=5)  # the batcher still works
    assert list(response.outputs[0].shape) == [2, 10]


async def test_full_queue_answers_unavailable_at_once(make_grpc_app, hold_model_busy):
    app = await make_grpc_app(max_queue_size=2)
    served = app.dataplane.model("digit")
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    busy = hold_model_busy(served)
    plug = asyncio.ensure_future(stub.ModelInfer(_v2_request()))
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(stub.ModelInfer(_v2_request(2)))
    await busy.wait_queued(2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(_v2_request(), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in tuple(err.value.trailing_metadata() or ())
    busy.release()
    await asyncio.gather(plug, queued)


async def test_message_size_limit_is_a_setting(make_grpc_app):
    app = await make_grpc_app(grpc_max_message_bytes=64 * 1024)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(app.channel)
    small = predict_request("digit", {"pixels": digits(16)})  # 50 KB
    assert len((await stub.Predict(small)).outputs["probabilities"].tensor_content) == 640
    big = predict_request("digit", {"pixels": digits(32)})  # 100 KB
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(big)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_default_limit_fits_the_pod_and_encoded_images_fit_under_it(make_grpc_app):
    """64 calls x 2 MiB bounds messages in flight (docs/reliability.md); a float image
    batch of 6.5 MB needs the setting raised, the same images encoded fit the default."""
    images = np.random.default_rng(0).random((24, 150, 150, 3), dtype=np.float32)
    default = await make_grpc_app()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(default.channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predict_request("image", {"image": images}))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    jpegs = np.array([solid_rgb(200, 10, 10, fmt="JPEG")] * 24, dtype=object)
    response = await stub.Predict(predict_request("image", {"image": jpegs}))
    assert len(response.outputs["probability"].tensor_content) == 24 * 4
    raised = await make_grpc_app(grpc_max_message_bytes=16 << 20)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(raised.channel)
    response = await stub.Predict(predict_request("image", {"image": images}))
    assert len(response.outputs["probability"].tensor_content) == 24 * 4


async def test_grpc_requests_in_prometheus_metrics(grpc_app):
    stub = pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    await stub.ModelInfer(_v2_request())
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ModelInfer(pb.ModelInferRequest(model_name="digit"))
    text = (await grpc_app.rest.get("/metrics")).text
    lines = [line for line in text.splitlines() if 'protocol="grpc"' in line
             and "_count" not in line and "_bucket" not in line and "_sum" not in line]
    assert any('status="OK"' in line and 'model="digit"' in line for line in lines), lines
    assert any('status="INVALID_ARGUMENT"' in line for line in lines), lines


async def test_api_keys(make_grpc_app):
    app = await make_grpc_app(api_keys=["s3cret"])
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready  # open health
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelMetadata(pb.ModelMetadataRequest(name="digit"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for metadata in ((("authorization", "Bearer s3cret"),), (("x-api-key", "s3cret"),)):
        meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="digit"),
                                        metadata=metadata)
        assert meta.name == "digit"
