"""gRPC request messages for TF Serving Predict and KServe v2 ModelInfer, from numpy.

Built with the server's generated stubs (serving/grpc/generated: no TensorFlow), shared
by the Locust gRPC user and the benchmark so both send the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb2
from serving.grpc.generated.tensorflow.core.framework import tensor_pb2, types_pb2
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2

TF_DTYPES = {"float32": types_pb2.DT_FLOAT, "int32": types_pb2.DT_INT32,
             "int64": types_pb2.DT_INT64, "float64": types_pb2.DT_DOUBLE}
V2_CONTENTS = {"float32": ("FP32", "fp32_contents"), "int32": ("INT32", "int_contents"),
               "int64": ("INT64", "int64_contents"), "float64": ("FP64", "fp64_contents")}
PREDICT = "/tensorflow.serving.PredictionService/Predict"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
MODEL_METADATA = "/inference.GRPCInferenceService/ModelMetadata"


@dataclass(frozen=True)
class GrpcCall:
    """A ready-to-send unary call: method path, request message, items it carries."""

    method: str
    request: Any
    response_type: Any
    items: int
    kind: str
    model: str

    @property
    def name(self) -> str:
        """The statistics label, e.g. "Predict digit [grpc-tfserving]"."""
        return f"{self.method.rsplit('/', 1)[-1]} {self.model} [{self.kind}]"


def tf_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=TF_DTYPES[str(array.dtype)],
                                   tensor_content=np.ascontiguousarray(array).tobytes())
    for size in array.shape:
        proto.tensor_shape.dim.add(size=int(size))
    return proto


def tfserving_predict(model: str, input_name: str, array: np.ndarray) -> GrpcCall:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[input_name].CopyFrom(tf_tensor(array))
    return GrpcCall(PREDICT, request, predict_pb2.PredictResponse, array.shape[0],
                    "grpc-tfserving", model)


def v2_infer(model: str, input_name: str, array: np.ndarray, *, raw: bool = False,
             stream: bool = False) -> GrpcCall:
    """ModelInfer with the numbers in typed ``contents`` (KServe's clients), or in
    ``raw_input_contents`` (``raw``: what tritonclient sends); ``stream``: the same
    request for ModelStreamInfer, answered by ModelStreamInferResponse."""
    datatype, field = V2_CONTENTS[str(array.dtype)]
    tensor = v2_pb2.ModelInferRequest.InferInputTensor(name=input_name, datatype=datatype,
                                                       shape=list(array.shape))
    request = v2_pb2.ModelInferRequest(model_name=model, inputs=[tensor])
    if raw:
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        request.raw_input_contents.append(np.ascontiguousarray(little).tobytes())
    else:
        getattr(request.inputs[0].contents, field).extend(array.reshape(-1).tolist())
    if stream:
        return GrpcCall(MODEL_STREAM_INFER, request, v2_pb2.ModelStreamInferResponse,
                        array.shape[0], "grpc-stream", model)
    return GrpcCall(MODEL_INFER, request, v2_pb2.ModelInferResponse, array.shape[0], "grpc-v2",
                    model)


def v2_metadata_request(model: str) -> v2_pb2.ModelMetadataRequest:
    return v2_pb2.ModelMetadataRequest(name=model)


def input_from_v2_metadata(response: v2_pb2.ModelMetadataResponse) -> tuple[str, str]:
    """(input name, numpy dtype) of the model's first input."""
    spec = response.inputs[0]
    by_v2 = {v[0]: k for k, v in V2_CONTENTS.items()}
    return spec.name, by_v2.get(spec.datatype, "float32")


def check_response(call: GrpcCall, response: Any) -> str | None:
    """None when the answer carries one result per item, else why not."""
    if call.kind == "grpc-stream":
        if response.error_message:
            return f"stream error: {response.error_message}"
        response = response.infer_response
    outputs = list(response.outputs.values()) if call.kind == "grpc-tfserving" \
        else list(response.outputs)
    if not outputs:
        return "no outputs in the response"
    first = outputs[0]
    dims = [d.size for d in first.tensor_shape.dim] if call.kind == "grpc-tfserving" \
        else list(first.shape)
    if not dims or dims[0] != call.items:
        return f"expected {call.items} results, got shape {dims}"
    return None
