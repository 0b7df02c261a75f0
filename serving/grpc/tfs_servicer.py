"""tensorflow.serving.PredictionService and ModelService over the DataPlane.

Wire-compatible with TensorFlow Serving: Predict (tensor_content or typed values,
strings for a task model's encoded items), GetModelMetadata (signature_def), Classify
and Regress (tf.Example inputs read by the model's task plug-in; task models only),
GetModelStatus. Each model serves one signature, its manifest's ``signature_name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.grpc import tf_tensors
from serving.grpc.errors import deadline_of, map_errors
from serving.grpc.generated.tensorflow.core.protobuf import meta_graph_pb2
from serving.grpc.generated.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from serving.grpc.generated.xla.tsl.protobuf import error_codes_pb2
from serving.grpc.tf_examples import example_features
from serving.models.status_reports import version_status
from serving.routing import ROUTING_KEY_HEADER
from serving.versions import version_number

if TYPE_CHECKING:
    from serving.models.registry import ServedModel
    from serving.tasks import Task

PROTOCOL = "grpc"
PREDICT_METHOD = "tensorflow/serving/predict"
_STATES = get_model_status_pb2.ModelVersionStatus.State


def resolve_version(dataplane: DataPlane, spec: model_pb2.ModelSpec,
                    context: grpc.aio.ServicerContext | None = None) -> int | None:
    """ModelSpec version, or label (labels.json), or the traffic split when neither is set
    (sticky per the routing-key metadata; ``context`` None: status and metadata, which
    are not routed) → a version (None = latest)."""
    if not spec.name:
        raise InvalidInput("model_spec.name is required")
    if spec.HasField("version"):
        return version_number(spec.version.value)
    label = spec.version_label if spec.HasField("version_label") else None
    if context is None:
        return None if label is None else dataplane.label_version(spec.name, label)
    return dataplane.route(spec.name, None, label=label, key=metadata_value(
        context, ROUTING_KEY_HEADER))


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key and isinstance(item.value, str):
            return str(item.value)
    return None


def _check_signature(spec: model_pb2.ModelSpec, served: ServedModel) -> None:
    signature = served.manifest.signature_name
    if spec.signature_name not in ("", signature):
        raise InvalidInput(f"signature {spec.signature_name!r} not found; "
                           f"the model serves {signature!r}")


def _answer_spec(served: ServedModel, version: int, target: model_pb2.ModelSpec) -> None:
    target.name = served.name
    target.version.value = version
    target.signature_name = served.manifest.signature_name


def _tensor_info(spec: Any) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=spec.name, dtype=tf_tensors.tf_dtype(spec.dtype))
    for d in spec.shape:
        info.tensor_shape.dim.add(size=d)
    return info


def signature_def(served: ServedModel) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for spec in served.manifest.inputs:
        sig.inputs[spec.name].CopyFrom(_tensor_info(spec))
    for spec in served.manifest.outputs:
        sig.outputs[spec.name].CopyFrom(_tensor_info(spec))
    return sig


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @map_errors
    async def Predict(self, request: predict_pb2.PredictRequest,
                      context: grpc.aio.ServicerContext) -> predict_pb2.PredictResponse:
        version = resolve_version(self.dataplane, request.model_spec, context)
        served = self.dataplane.model(request.model_spec.name, version)
        _check_signature(request.model_spec, served)
        # Declared only: the dataplane builds each tensor once its declaration is admitted.
        inputs = {k: tf_tensors.to_wire(v, k) for k, v in request.inputs.items()}
        # The requested version, not served.version: a reload meanwhile is followed.
        result = await self.dataplane.infer(
            served.name, version, inputs, protocol=PROTOCOL,
            deadline=deadline_of(context), output_names=list(request.output_filter) or None)
        response = predict_pb2.PredictResponse()
        _answer_spec(served, result.model_version, response.model_spec)
        for name, array in result.outputs.items():
            tf_tensors.write_numpy(response.outputs[name], array)  # in place: no copy
        return response

    @map_errors
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        unsupported = [f for f in request.metadata_field if f != "signature_def"]
        if unsupported or not request.metadata_field:
            raise InvalidInput(f"metadata_field must be ['signature_def'], "
                               f"got {list(request.metadata_field)}")
        served = self.dataplane.model(request.model_spec.name,
                                      resolve_version(self.dataplane, request.model_spec))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def[served.manifest.signature_name].CopyFrom(signature_def(served))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _answer_spec(served, served.version, response.model_spec)
        response.model_spec.signature_name = ""
        response.metadata["signature_def"].Pack(signatures)
        return response

    def _task_model(self, request: Any, context: grpc.aio.ServicerContext
                    ) -> tuple[ServedModel, Task]:
        served = self.dataplane.model(request.model_spec.name,
                                      resolve_version(self.dataplane, request.model_spec,
                                                      context))
        _check_signature(request.model_spec, served)
        if served.task is None:
            raise InvalidInput(f"model {served.name} is a generic tensor model: Classify and "
                               f"Regress need a task model; use Predict")
        return served, served.task

    async def _predict_task(self, request: Any, served: ServedModel, task: Task,
                            context: grpc.aio.ServicerContext) -> Any:
        """Examples counted by the dataplane first, then read as the task's items."""
        which = request.input.WhichOneof("kind")
        if which is None:
            raise InvalidInput("input needs example_list or example_list_with_context")
        examples = getattr(request.input, which).examples
        return await self.dataplane.predict(
            task.name, examples, model=served.name, version=served.version,
            unwrap=lambda example, i: task.feature_item(example_features(example, i), i),
            protocol=PROTOCOL, deadline=deadline_of(context))

    @map_errors
    async def Classify(self, request: classification_pb2.ClassificationRequest,
                       context: grpc.aio.ServicerContext,
                       ) -> classification_pb2.ClassificationResponse:
        served, task = self._task_model(request, context)
        result = await self._predict_task(request, served, task, context)
        response = classification_pb2.ClassificationResponse()
        _answer_spec(served, result.model_version, response.model_spec)
        for prediction in result.predictions:
            response.result.classifications.add().classes.extend(
                classification_pb2.Class(label=label, score=p) for label, p in prediction.top)
        return response

    @map_errors
    async def Regress(self, request: regression_pb2.RegressionRequest,
                      context: grpc.aio.ServicerContext) -> regression_pb2.RegressionResponse:
        served, task = self._task_model(request, context)
        manifest = served.manifest
        if manifest.postprocessing is None or manifest.postprocessing.kind != "sigmoid":
            raise InvalidInput(f"model {served.name} has {len(manifest.labels)} classes; "
                               f"Regress needs a single-probability (sigmoid) model, "
                               f"use Classify")
        result = await self._predict_task(request, served, task, context)
        response = regression_pb2.RegressionResponse()
        _answer_spec(served, result.model_version, response.model_spec)
        positive = manifest.labels[1]
        for prediction in result.predictions:
            value = dict(prediction.top)[positive]
            response.result.regressions.add(value=value)
        return response

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported")


def version_status_message(served: ServedModel) -> get_model_status_pb2.ModelVersionStatus:
    report = version_status(served)
    status = get_model_status_pb2.ModelVersionStatus(version=report.version,
                                                     state=_STATES.Value(report.state))
    status.status.error_code = error_codes_pb2.Code.Value(report.error_code)
    status.status.error_message = report.error_message
    return status


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @map_errors
    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        version = resolve_version(self.dataplane, spec)
        if version is None and spec.HasField("version_label"):
            version = self.dataplane.model(spec.name).version
        response = get_model_status_pb2.GetModelStatusResponse()
        for served in self.dataplane.model_statuses(spec.name, version):
            response.model_version_status.append(version_status_message(served))
        return response

    async def HandleReloadConfigRequest(self, request: Any,
                                        context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "configuration reload is not supported; the repository is polled")
