"""build_grpc_server: every gRPC service on one grpc.aio server, in the caller's loop.

The server process calls ``build_grpc_server(dataplane, settings)``, then
``await server.start()`` beside uvicorn, and on shutdown ``dataplane.start_draining()``
(health turns NOT_SERVING through the dataplane hook) and ``await server.stop(grace)``.
The returned server carries ``server.port`` (the bound port: settings may say 0) and
``server.health`` (a ReadinessHealth with ``set_serving``).
"""

from __future__ import annotations

import importlib
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from serving.auth import load_api_keys
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.grpc.auth import ApiKeyInterceptor
from serving.grpc.generated import _pool
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as v2_grpc
from serving.grpc.generated.tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from serving.grpc.health import ReadinessHealth
from serving.grpc.tfs_servicer import ModelService, PredictionService
from serving.grpc.v2_servicer import InferenceService

logger = logging.getLogger(__name__)
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
            "inference.GRPCInferenceService")

SERVICE_FILES = ("serving.grpc.generated.tensorflow_serving.apis.prediction_service_pb2",
                 "serving.grpc.generated.tensorflow_serving.apis.model_service_pb2",
                 "serving.grpc.generated.grpc_predict_v2_pb2")


def server_options(settings: Settings) -> list[tuple[str, int]]:
    size = settings.grpc_max_message_bytes
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        # Several worker processes share one port only when asked to; otherwise a second
        # server on a busy port must fail instead of silently taking half the traffic.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]


def _register_descriptors() -> None:
    """Reflection describes from our private pool: the services' own files (the stubs
    import only the message files) and health's and reflection's files."""
    for service_file in SERVICE_FILES:
        importlib.import_module(service_file)
    for module in (health_pb2, reflection_pb2):
        try:
            _pool.POOL.FindFileByName(module.DESCRIPTOR.name)
        except KeyError:
            _pool.POOL.AddSerializedFile(module.DESCRIPTOR.serialized_pb)


def build_grpc_server(dataplane: DataPlane, settings: Settings) -> grpc.aio.Server:
    keys = load_api_keys(settings)
    interceptors = [ApiKeyInterceptor(keys, open_health=settings.open_health_and_metrics)] \
        if keys else []
    # Calls past the limit are answered RESOURCE_EXHAUSTED before their message is read:
    # with the message size, this bounds the memory of messages in flight.
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings),
                             maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(dataplane), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(dataplane), server)
    v2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(dataplane), server)
    health = ReadinessHealth(dataplane, SERVICES)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _register_descriptors()
    reflection.enable_server_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server, pool=_pool.POOL)
    address = f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC to {address}")
    server.port = port  # type: ignore[attr-defined]
    server.health = health  # type: ignore[attr-defined]
    logger.info("gRPC on %s:%d (max message %d bytes, %d calls at once)", settings.host, port,
                settings.grpc_max_message_bytes, settings.grpc_max_concurrent_rpcs)
    return server
