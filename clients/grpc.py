"""gRPC client (grpcio + the generated stubs, no TensorFlow): the same methods as
clients.rest's.

Tasks go through TF Serving's PredictionService/Classify (tf.Example features:
image and text as bytes, digits as 784 floats or image bytes); raw tensors through
the Open Inference Protocol's ModelInfer with raw contents; metadata, model list and
health through the v2 service. RESOURCE_EXHAUSTED/UNAVAILABLE are retried with
backoff (the server's retry-after trailer wins).

    with Client("127.0.0.1:8500") as client:
        client.infer("digit", {"pixels": np.zeros((1, 784), np.float32)})
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from clients import _common as common
from clients._common import Prediction, PredictResult, RetryPolicy
from clients.errors import ClientError, parse_retry_after
from serving.grpc.generated import grpc_predict_v2_pb2 as v2
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as v2_grpc
from serving.grpc.generated.tensorflow.core.example import example_pb2, feature_pb2
from serving.grpc.generated.tensorflow_serving.apis import (
    classification_pb2,
    prediction_service_pb2_grpc,
)
from serving.wire.dtypes import NUMPY_TO_V2, V2_TO_NUMPY
from serving.wire.v2_bytes import decode_bytes, encode_bytes

__all__ = ["AsyncClient", "Client", "ClientError", "PredictResult", "Prediction"]
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class _Call:
    service: str  # "tfs" or "v2"
    method: str
    request: Any
    parse: Callable[[Any], Any]


def _target(url: str) -> str:
    return url.removeprefix("grpc://").removeprefix("dns:///").rstrip("/")


def _feature(task: str, item: Any) -> feature_pb2.Feature:
    if isinstance(item, bytes):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[item]))
    if isinstance(item, str):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[item.encode()]))
    return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=np.ravel(item).tolist()))


def _classify(task: str, items: list[Any], model: str | None, version: int | None
              ) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model or task
    if version is not None:
        request.model_spec.version.value = int(version)
    request.input.example_list.examples.extend(
        example_pb2.Example(features=feature_pb2.Features(feature={task: _feature(task, it)}))
        for it in items)
    return request


def _task_parser(top_k: int | None) -> Callable[[Any], PredictResult]:
    def parse(response: classification_pb2.ClassificationResponse) -> PredictResult:
        predictions = []
        for classes in response.result.classifications:
            top = [(c.label, float(c.score)) for c in classes.classes]
            predictions.append(Prediction(top[0][0], top[0][1], common.limit_top(top, top_k)))
        return PredictResult(response.model_spec.name, str(response.model_spec.version.value),
                             predictions)
    return parse


def _infer_request(model: str, inputs: dict[str, Any], version: int | None,
                   outputs: list[str] | None) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=model,
                                   model_version="" if version is None else str(version))
    for name, array in inputs.items():
        arr = np.asarray(array)
        if arr.dtype.kind in "SUO":
            request.inputs.add(name=name, datatype="BYTES", shape=list(arr.shape))
            request.raw_input_contents.append(encode_bytes(arr.astype(object)))
            continue
        request.inputs.add(name=name, datatype=NUMPY_TO_V2[arr.dtype.name],
                           shape=list(arr.shape))
        request.raw_input_contents.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    request.outputs.extend(v2.ModelInferRequest.InferRequestedOutputTensor(name=n)
                           for n in outputs or ())
    return request


def _infer_outputs(response: v2.ModelInferResponse) -> dict[str, np.ndarray]:
    outputs = {}
    for i, out in enumerate(response.outputs):
        dtype = np.dtype(V2_TO_NUMPY[out.datatype])
        raw = response.raw_output_contents[i]
        shape = list(out.shape)
        if dtype.kind == "O":
            outputs[out.name] = decode_bytes(raw, out.name, int(np.prod(shape))).reshape(shape)
        else:
            outputs[out.name] = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype) \
                .reshape(shape)
    return outputs


def _metadata(response: v2.ModelMetadataResponse) -> dict[str, Any]:
    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]
    return {"name": response.name, "versions": list(response.versions),
            "platform": response.platform, "inputs": tensors(response.inputs),
            "outputs": tensors(response.outputs)}


def _models(response: v2.RepositoryIndexResponse) -> list[dict[str, str]]:
    return [{"name": m.name, "version": m.version, "state": m.state,
             **({"reason": m.reason} if m.reason else {})} for m in response.models]


class _GrpcApi:
    """The public methods; ``_run`` (sync or async) sends a _Call."""

    def _run(self, call: _Call) -> Any:
        raise NotImplementedError

    def _task(self, task: str, items: list[Any], model: str | None, version: int | None,
              top_k: int | None) -> Any:
        return self._run(_Call("tfs", "Classify", _classify(task, items, model, version),
                               _task_parser(top_k)))

    def predict_image(self, images: Any, *, model: str | None = None,
                      version: int | None = None, top_k: int | None = None) -> Any:
        return self._task("image", common.image_items(images), model, version, top_k)

    def predict_text(self, texts: Any, *, model: str | None = None,
                     version: int | None = None, top_k: int | None = None) -> Any:
        return self._task("text", common.text_items(texts), model, version, top_k)

    def predict_digit(self, digits: Any, *, model: str | None = None,
                      version: int | None = None, top_k: int | None = None) -> Any:
        return self._task("digit", common.digit_items(digits), model, version, top_k)

    def infer(self, model: str, inputs: dict[str, Any], version: int | None = None, *,
              outputs: list[str] | None = None) -> Any:
        return self._run(_Call("v2", "ModelInfer",
                               _infer_request(model, inputs, version, outputs), _infer_outputs))

    def model_metadata(self, model: str, version: int | None = None) -> Any:
        request = v2.ModelMetadataRequest(name=model,
                                          version="" if version is None else str(version))
        return self._run(_Call("v2", "ModelMetadata", request, _metadata))

    def models(self) -> Any:
        return self._run(_Call("v2", "RepositoryIndex", v2.RepositoryIndexRequest(), _models))

    def live(self) -> Any:
        return self._run(_Call("v2", "ServerLive", v2.ServerLiveRequest(), lambda r: r.live))

    def ready(self) -> Any:
        return self._run(_Call("v2", "ServerReady", v2.ServerReadyRequest(),
                               lambda r: r.ready))


def _error(exc: grpc.RpcError) -> ClientError:
    retry_after = None
    for key, value in exc.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "retry-after":
            retry_after = parse_retry_after(value)
    return ClientError(exc.code().name, exc.details() or "",  # type: ignore[attr-defined]
                       retry_after=retry_after)


def _options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]


def _metadata_for(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


class Client(_GrpcApi):
    def __init__(self, url: str = "127.0.0.1:8500", *,
                 timeout: float = common.DEFAULT_TIMEOUT_S, retries: int = 3,
                 api_key: str | None = None, retry: RetryPolicy | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=retries)
        self._metadata = _metadata_for(api_key)
        self._channel = grpc.insecure_channel(_target(url), options=_options(max_message_bytes))
        self._stubs = {"tfs": prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
                       "v2": v2_grpc.GRPCInferenceServiceStub(self._channel)}

    def _run(self, call: _Call) -> Any:
        method = getattr(self._stubs[call.service], call.method)
        attempt = 0
        while True:
            try:
                response = method(call.request, timeout=self.timeout, metadata=self._metadata)
                return call.parse(response)
            except grpc.RpcError as exc:
                err = _error(exc)
                delay = self.retry.delay(attempt, err)
                if delay is None:
                    raise err from None
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_GrpcApi):
    """grpc.aio; one channel multiplexes every concurrent call (HTTP/2 streams)."""

    def __init__(self, url: str = "127.0.0.1:8500", *,
                 timeout: float = common.DEFAULT_TIMEOUT_S, retries: int = 3,
                 api_key: str | None = None, retry: RetryPolicy | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=retries)
        self._metadata = _metadata_for(api_key)
        self._target = _target(url)
        self._options = _options(max_message_bytes)
        self._channel: grpc.aio.Channel | None = None
        self._stubs: dict[str, Any] = {}

    def _stub(self, service: str) -> Any:
        if self._channel is None:  # created in the running loop, on first use
            self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
            self._stubs = {
                "tfs": prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
                "v2": v2_grpc.GRPCInferenceServiceStub(self._channel)}
        return self._stubs[service]

    async def _run(self, call: _Call) -> Any:
        method = getattr(self._stub(call.service), call.method)
        attempt = 0
        while True:
            try:
                response = await method(call.request, timeout=self.timeout,
                                        metadata=self._metadata)
                return call.parse(response)
            except grpc.aio.AioRpcError as exc:
                err = _error(exc)
                delay = self.retry.delay(attempt, err)
                if delay is None:
                    raise err from None
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
