"""TensorFlow Serving's own Python API (tensorflow-serving-api + TensorFlow), used as a
user would, against our gRPC server: Predict, GetModelMetadata, GetModelStatus."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from tests.compat.helpers import ort_outputs
from tests.integration.grpc.helpers import digits, png

pytestmark = pytest.mark.slow  # imports TensorFlow (~5 s)


def _official_calls(target: str, pixels: np.ndarray, image: bytes) -> dict:
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "digit"
        request.model_spec.signature_name = "serving_default"
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(pixels))
        digit = tf.make_ndarray(stub.Predict(request, 10.0).outputs["probabilities"])

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "image"
        request.model_spec.version.value = 1
        request.inputs["image"].CopyFrom(tf.make_tensor_proto([image]))
        image_prob = tf.make_ndarray(stub.Predict(request, 10.0).outputs["probability"])

        meta_request = get_model_metadata_pb2.GetModelMetadataRequest()
        meta_request.model_spec.name = "digit"
        meta_request.metadata_field.append("signature_def")
        meta = stub.GetModelMetadata(meta_request, 10.0)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(signatures)

        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "digit"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            status_request, 10.0)
    sig = signatures.signature_def["serving_default"]
    return {"digit": digit, "image": image_prob,
            "input_dtype": tf.dtypes.as_dtype(sig.inputs["pixels"].dtype),
            "input_shape": tf.TensorShape(sig.inputs["pixels"].tensor_shape).as_list(),
            "state": status.model_version_status[0].state}


async def test_tensorflow_serving_api_client(grpc_app, tiny_model_repository):
    pixels = digits(4)
    image = png((200, 30, 30), (150, 150))
    got = await asyncio.to_thread(_official_calls, grpc_app.target, pixels, image)
    want = ort_outputs(tiny_model_repository, "digit", {"pixels": pixels})["probabilities"]
    np.testing.assert_array_equal(got["digit"], want)  # the very same numbers, bit for bit
    decoded = grpc_app.dataplane.model("image").codec.decode(image)[None]
    want_image = ort_outputs(tiny_model_repository, "image", {"image": decoded})
    np.testing.assert_allclose(got["image"], want_image["probability"], rtol=1e-6)
    assert got["input_dtype"].name == "float32"
    assert got["input_shape"] == [None, 784]
    assert got["state"] == 30  # AVAILABLE
