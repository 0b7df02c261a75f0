"""inference.GRPCInferenceService (Open Inference Protocol v2) against a real server."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.grpc.helpers import digits, png


@pytest.fixture
def stub(grpc_app):
    return pb_grpc.GRPCInferenceServiceStub(grpc_app.channel)


def _output(response: pb.ModelInferResponse, name: str) -> np.ndarray:
    for i, out in enumerate(response.outputs):
        if out.name == name:
            assert out.datatype == "FP32"
            return np.frombuffer(response.raw_output_contents[i], "<f4").reshape(out.shape)
    raise KeyError(name)


async def test_health_and_metadata(stub):
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="digit"))).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="digit", version="1"))).ready
    meta = await stub.ServerMetadata(pb.ServerMetadataRequest())
    assert meta.name == "modelserve" and meta.version
    model = await stub.ModelMetadata(pb.ModelMetadataRequest(name="text"))
    assert model.name == "text" and list(model.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == \
        [("tokens", "INT32", [-1, 100])]
    assert [(t.name, t.datatype) for t in model.outputs] == [("probability", "FP32")]


async def test_unknown_model_and_bad_version(stub):
    for call in (stub.ModelReady(pb.ModelReadyRequest(name="nope")),
                 stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")),
                 stub.ModelMetadata(pb.ModelMetadataRequest(name="digit", version="9"))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelMetadata(pb.ModelMetadataRequest(name="digit", version="one"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_infer_typed_contents(stub):
    pixels = digits(2)
    request = pb.ModelInferRequest(model_name="digit", id="req-1")
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[2, 784])
    tensor.contents.fp32_contents.extend(pixels.reshape(-1).tolist())
    response = await stub.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("digit", "1", "req-1")
    np.testing.assert_allclose(_output(response, "probabilities"), digit_reference(pixels),
                               rtol=1e-5, atol=1e-6)


async def test_infer_raw_contents_and_output_selection(stub):
    pixels = digits(4, seed=2)
    request = pb.ModelInferRequest(model_name="digit", model_version="1")
    request.inputs.add(name="pixels", datatype="FP32", shape=[4, 784])
    request.raw_input_contents.append(pixels.astype("<f4").tobytes())
    request.outputs.add(name="probabilities")
    response = await stub.ModelInfer(request)
    np.testing.assert_allclose(_output(response, "probabilities"), digit_reference(pixels),
                               rtol=1e-5, atol=1e-6)


async def test_infer_int32_tokens_and_bytes_images(stub):
    request = pb.ModelInferRequest(model_name="text")
    tokens = request.inputs.add(name="tokens", datatype="INT32", shape=[1, 100])
    tokens.contents.int_contents.extend([4] + [0] * 99)  # token 4 = "good"
    assert _output(await stub.ModelInfer(request), "probability")[0, 0] == pytest.approx(
        text_reference("good"), rel=1e-6)

    raw = b"".join(struct.pack("<I", len(b)) + b for b in (png((255, 0, 0)), png((0, 0, 255))))
    request = pb.ModelInferRequest(model_name="image")
    request.inputs.add(name="image", datatype="BYTES", shape=[2])
    request.raw_input_contents.append(raw)
    prob = _output(await stub.ModelInfer(request), "probability")[:, 0]
    assert prob == pytest.approx([image_reference(255, 0, 0), image_reference(0, 0, 255)],
                                 rel=1e-5)


@pytest.mark.parametrize(("datatype", "shape", "raw", "words"), [
    ("FP64", [1, 784], np.zeros(784, "<f8").tobytes(), "float32"),
    ("FP32", [1, 10], np.zeros(10, "<f4").tobytes(), "shape"),
    ("FP32", [1, 784], b"\0" * 12, "raw bytes"),
    ("COMPLEX", [1, 784], b"", "datatype"),
])
async def test_infer_invalid(stub, datatype, shape, raw, words):
    request = pb.ModelInferRequest(model_name="digit")
    request.inputs.add(name="pixels", datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()


async def test_infer_unknown_model(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(pb.ModelInferRequest(model_name="missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_repository_index(stub):
    response = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert sorted((m.name, m.version, m.state) for m in response.models) == [
        ("digit", "1", "READY"), ("image", "1", "READY"), ("text", "1", "READY")]
