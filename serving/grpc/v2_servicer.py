"""inference.GRPCInferenceService (Open Inference Protocol v2 / KServe) over the DataPlane."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from google.protobuf.unknown_fields import UnknownFieldSet

from serving import request_ids
from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.grpc import v2_tensors
from serving.grpc.errors import deadline_of, map_errors, sent_id
from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.grpc.tfs_servicer import metadata_value
from serving.grpc.v2_stream import InferStream
from serving.routing import KEY_PARAMETER, LABEL_PARAMETER, ROUTING_KEY_HEADER
from serving.versions import parse_version
from serving.wire.dtypes import v2_datatype

PROTOCOL = "grpc"
PLATFORM = "onnxruntime_onnx"
Context: TypeAlias = grpc.aio.ServicerContext


def repository_model_name(request: Any) -> str:
    """KServe's load/unload messages carry model_name as field 1; Triton's (same service
    and method names) as field 2 after repository_name, which arrives here unknown."""
    if request.model_name:
        return str(request.model_name)
    for field in UnknownFieldSet(request):
        if field.field_number == 2 and field.wire_type == 2:  # length-delimited string
            return bytes(field.data).decode("utf-8", errors="replace")
    raise InvalidInput("model_name is required")


def _string_parameter(request: pb.ModelInferRequest, key: str) -> str | None:
    if key not in request.parameters:
        return None
    parameter = request.parameters[key]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput(f"parameter {key!r} must be a string")
    return parameter.string_param or None


def _tensor_metadata(spec: Any) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=v2_datatype(spec.dtype), shape=spec.shape)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @map_errors
    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    @map_errors
    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    @map_errors
    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Context) -> pb.ModelReadyResponse:
        version = parse_version(request.version)
        self.dataplane.model_statuses(request.name, version)  # NOT_FOUND for unknown models
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, version))

    @map_errors
    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Context) -> pb.ServerMetadataResponse:
        meta = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                         extensions=meta["extensions"])

    @map_errors
    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Context) -> pb.ModelMetadataResponse:
        version = parse_version(request.version)
        served = self.dataplane.model(request.name, version)
        versions = [str(v) for v in self.dataplane.available_versions(served.name)]
        manifest = served.manifest
        return pb.ModelMetadataResponse(
            name=served.name, versions=versions, platform=PLATFORM,
            inputs=[_tensor_metadata(s) for s in manifest.inputs],
            outputs=[_tensor_metadata(s) for s in manifest.outputs])

    @map_errors
    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Context) -> pb.ModelInferResponse:
        return await self._infer(request, deadline_of(context), context)

    async def ModelStreamInfer(self, requests: AsyncIterator[pb.ModelInferRequest],
                               context: Context) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's bidirectional stream (v2_stream.py): one response per request, errors
        as messages, requests batched with every other."""
        stream_id = request_ids.start(sent_id(context))
        context.set_trailing_metadata(((request_ids.HEADER, stream_id),))
        stream_deadline = deadline_of(context)
        settings = self.dataplane.settings
        timeout = settings.request_timeout_s

        async def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
            deadline = time.monotonic() + timeout  # each request its own, within the stream's
            return await self._infer(request, deadline if stream_deadline is None
                                     else min(deadline, stream_deadline), context)

        stream = InferStream(infer, max_in_flight=settings.grpc_stream_max_in_flight,
                             max_bytes=settings.grpc_stream_bytes_in_flight,
                             stream_id=stream_id)
        async for response in stream.responses(requests):
            yield response

    async def _infer(self, request: pb.ModelInferRequest,
                     deadline: float | None, context: Context) -> pb.ModelInferResponse:
        # Labels and the traffic split; a stream's routing key is its call's metadata.
        version = self.dataplane.route(
            request.model_name, parse_version(request.model_version),
            label=_string_parameter(request, LABEL_PARAMETER),
            key=(_string_parameter(request, KEY_PARAMETER)
                 or metadata_value(context, ROUTING_KEY_HEADER)))
        inputs = v2_tensors.request_inputs(request)  # declared; built once admitted
        wanted = [out.name for out in request.outputs] or None
        result = await self.dataplane.infer(request.model_name, version, inputs,
                                            protocol=PROTOCOL, deadline=deadline,
                                            output_names=wanted)
        response = pb.ModelInferResponse(model_name=result.model_name,
                                         model_version=str(result.model_version),
                                         id=request.id)
        for name, array in result.outputs.items():
            v2_tensors.add_output(response, name, array)
        return response

    @map_errors
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: Context) -> pb.RepositoryIndexResponse:
        """Triton's model_repository extension: every known version and its state."""
        response = pb.RepositoryIndexResponse()
        for entry in self.dataplane.repository_index(ready_only=request.ready):
            response.models.add(name=entry.name, version=str(entry.version),
                                state=entry.state, reason=entry.reason)
        return response

    @map_errors
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: Context) -> pb.RepositoryModelLoadResponse:
        """Load, or reload in place, a model from the repository (serving/models/watcher.py);
        PERMISSION_DENIED unless the repository_api setting enables it."""
        self.dataplane.repository.check_api()
        name = repository_model_name(request)
        await self.dataplane.repository.load_model(name)
        return pb.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    @map_errors
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: Context) -> pb.RepositoryModelUnloadResponse:
        self.dataplane.repository.check_api()
        name = repository_model_name(request)
        await self.dataplane.repository.unload_model(name)
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)
