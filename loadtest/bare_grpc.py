"""The bare gRPC limits: grpc.aio, one generic handler, one ONNX Runtime call per request.

What TF Serving ``Predict``, v2 ``ModelInfer`` and v2 ``ModelStreamInfer`` would cost
in Python with nothing of ours around them: the messages parsed by protobuf, the
tensor read as numpy (``tensor_content``, typed ``contents`` or ``raw_input_contents``,
whichever the request carries), one ``session.run``, every output written back raw.
No servicer classes, no interceptors, no validation, no batching. The benchmark reads
the served gRPC paths as a fraction of these limits (same client, same messages).

    python -m loadtest.bare_grpc --model models/digit/1/model.onnx --port 8502
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from loadtest.bare_model import OrtModel
from loadtest.grpc_messages import MODEL_INFER, MODEL_STREAM_INFER, PREDICT, tf_tensor
from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb2
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2

_V2_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64}
_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT32": "int_contents",
             "INT64": "int64_contents"}


class BareGrpc(grpc.GenericRpcHandler):
    """The one generic handler: three methods, looked up by path."""

    def __init__(self, model: OrtModel) -> None:
        self.model = model
        self.handlers = {
            PREDICT: grpc.unary_unary_rpc_method_handler(
                self.predict, request_deserializer=predict_pb2.PredictRequest.FromString,
                response_serializer=predict_pb2.PredictResponse.SerializeToString),
            MODEL_INFER: grpc.unary_unary_rpc_method_handler(
                self.model_infer, request_deserializer=v2_pb2.ModelInferRequest.FromString,
                response_serializer=v2_pb2.ModelInferResponse.SerializeToString),
            MODEL_STREAM_INFER: grpc.stream_stream_rpc_method_handler(
                self.model_stream_infer,
                request_deserializer=v2_pb2.ModelInferRequest.FromString,
                response_serializer=v2_pb2.ModelStreamInferResponse.SerializeToString),
        }

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        return self.handlers.get(handler_call_details.method)

    async def predict(self, request: Any, context: Any) -> Any:
        proto = next(iter(request.inputs.values()))
        array = np.frombuffer(proto.tensor_content, dtype=np.float32).reshape(
            [d.size for d in proto.tensor_shape.dim])
        response = predict_pb2.PredictResponse()
        for name, out in zip(self.model.output_names, self.model.run(array), strict=True):
            response.outputs[name].CopyFrom(tf_tensor(out))
        return response

    def _infer(self, request: Any) -> Any:
        tensor = request.inputs[0]
        dtype = _V2_NUMPY[tensor.datatype]
        if request.raw_input_contents:
            array = np.frombuffer(request.raw_input_contents[0], dtype=dtype)
        else:
            array = np.asarray(getattr(tensor.contents, _CONTENTS[tensor.datatype]), dtype=dtype)
        outputs = self.model.run(array.reshape(tuple(tensor.shape)))
        response = v2_pb2.ModelInferResponse(model_name=request.model_name, model_version="1",
                                             id=request.id)
        for name, out in zip(self.model.output_names, outputs, strict=True):
            response.outputs.add(name=name, datatype="FP32", shape=list(out.shape))
            response.raw_output_contents.append(out.tobytes())
        return response

    async def model_infer(self, request: Any, context: Any) -> Any:
        return self._infer(request)

    async def model_stream_infer(self, requests: AsyncIterator[Any],
                                 context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield v2_pb2.ModelStreamInferResponse(infer_response=self._infer(request))


async def serve(model: OrtModel, port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((BareGrpc(model),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise RuntimeError(f"cannot bind 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8502)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    model = OrtModel(args.model, threads=args.threads)
    try:
        import uvloop
    except ImportError:  # the serving process's loop where it exists
        asyncio.run(serve(model, args.port))
    else:
        uvloop.run(serve(model, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
