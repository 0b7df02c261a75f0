"""tensorflow.serving.PredictionService / ModelService against a real grpc.aio server."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from serving.grpc.generated.tensorflow.core.example import example_pb2, feature_pb2
from serving.grpc.generated.tensorflow.core.framework import tensor_pb2, types_pb2
from serving.grpc.generated.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from serving.grpc.tf_tensors import to_numpy
from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.grpc.helpers import digits, png, predict_request


@pytest.fixture
def stub(grpc_app):
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc_app.channel)


async def test_predict_tensor_content_matches_model(stub):
    pixels = digits(3)
    response = await stub.Predict(predict_request("digit", {"pixels": pixels}))
    assert response.model_spec.name == "digit"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    out = to_numpy(response.outputs["probabilities"])
    np.testing.assert_allclose(out, digit_reference(pixels), rtol=1e-5, atol=1e-6)


async def test_predict_typed_float_val_and_version(stub):
    pixels = digits(2, seed=1)
    request = predict_request("digit", {}, version=1, output_filter=("probabilities",))
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    tensor.tensor_shape.dim.add(size=2)
    tensor.tensor_shape.dim.add(size=784)
    tensor.float_val.extend(pixels.reshape(-1).tolist())
    request.inputs["pixels"].CopyFrom(tensor)
    response = await stub.Predict(request)
    np.testing.assert_allclose(to_numpy(response.outputs["probabilities"]),
                               digit_reference(pixels), rtol=1e-5, atol=1e-6)


async def test_predict_latest_label_and_unknown_label(stub):
    response = await stub.Predict(predict_request("digit", {"pixels": digits(1)},
                                                  label="latest"))
    assert response.model_spec.version.value == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predict_request("digit", {"pixels": digits(1)}, label="canary"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_predict_images_as_strings(stub):
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    strings = np.array([red, blue], dtype=object)
    response = await stub.Predict(predict_request("image", {"image": strings}))
    prob = to_numpy(response.outputs["probability"])[:, 0]
    assert prob == pytest.approx([image_reference(255, 0, 0), image_reference(0, 0, 255)],
                                 rel=1e-5)


async def test_predict_text_as_strings(stub):
    texts = np.array([b"good fun movie", b"awful bad plot"], dtype=object)
    response = await stub.Predict(predict_request("text", {"tokens": texts}))
    prob = to_numpy(response.outputs["probability"])[:, 0]
    assert prob == pytest.approx([text_reference("good fun movie"),
                                  text_reference("awful bad plot")], rel=1e-5)


@pytest.mark.parametrize(("model", "inputs", "code", "words"), [
    ("digit", {"pixels": np.zeros((1, 784), np.float64)}, "INVALID_ARGUMENT", "float32"),
    ("digit", {"pixels": np.zeros((1, 783), np.float32)}, "INVALID_ARGUMENT", "shape"),
    ("digit", {"wrong": np.zeros((1, 784), np.float32)}, "INVALID_ARGUMENT", "unknown"),
    ("nope", {"pixels": np.zeros((1, 784), np.float32)}, "NOT_FOUND", "nope"),
])
async def test_predict_errors(stub, model, inputs, code, words):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predict_request(model, inputs))
    assert err.value.code() == grpc.StatusCode[code]
    assert words in err.value.details()


async def test_unknown_version_and_bad_signature(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predict_request("digit", {"pixels": digits(1)}, version=7))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    request = predict_request("digit", {"pixels": digits(1)})
    request.model_spec.signature_name = "other"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_model_metadata_signature_def(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "text"
    response = await stub.GetModelMetadata(request)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    sig = signatures.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert sig.inputs["tokens"].dtype == types_pb2.DT_INT32
    assert [d.size for d in sig.inputs["tokens"].tensor_shape.dim] == [-1, 100]
    assert sig.outputs["probability"].dtype == types_pb2.DT_FLOAT
    bad = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["graph"])
    bad.model_spec.name = "text"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModelMetadata(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _examples(*features: feature_pb2.Feature, key: str = "x"):
    return [example_pb2.Example(features=feature_pb2.Features(feature={key: f}))
            for f in features]


async def test_classify_text_and_digit(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "text"
    request.input.example_list.examples.extend(_examples(
        feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[b"good great"])),
        feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[b"bad awful"]))))
    response = await stub.Classify(request)
    first, second = response.result.classifications
    assert first.classes[0].label == "positive" and second.classes[0].label == "negative"
    assert first.classes[0].score == pytest.approx(text_reference("good great"), rel=1e-6)
    assert second.classes[0].score == pytest.approx(1 - text_reference("bad awful"), rel=1e-6)
    assert sum(c.score for c in first.classes) == pytest.approx(1.0)

    pixels = digits(1, seed=3)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "digit"
    request.input.example_list.examples.extend(_examples(
        feature_pb2.Feature(float_list=feature_pb2.FloatList(value=pixels[0].tolist()))))
    response = await stub.Classify(request)
    best = response.result.classifications[0].classes[0]
    expected = digit_reference(pixels)[0]
    assert best.label == str(int(np.argmax(expected)))
    assert best.score == pytest.approx(float(expected.max()), rel=1e-5)


async def test_regress_sigmoid_models_only(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "image"
    request.input.example_list.examples.extend(_examples(
        feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[png((255, 0, 0))])),
        key="image"))
    response = await stub.Regress(request)
    assert response.result.regressions[0].value == pytest.approx(  # P("sneaker") for red
        image_reference(255, 0, 0), rel=1e-5)
    request.model_spec.name = "digit"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Regress(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_model_status(grpc_app):
    stub = model_service_pb2_grpc.ModelServiceStub(grpc_app.channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "digit"
    response = await stub.GetModelStatus(request)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0
    request.model_spec.name = "missing"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModelStatus(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
