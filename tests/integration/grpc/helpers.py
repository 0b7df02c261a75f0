"""Small builders shared by the gRPC integration tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from serving.grpc import tf_tensors
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def digits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)


def predict_request(model: str, inputs: dict[str, np.ndarray], *, version: int | None = None,
                    label: str | None = None, output_filter: tuple[str, ...] = ()
                    ) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf_tensors.from_numpy(array))
    return request
