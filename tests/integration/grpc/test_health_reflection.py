"""grpc.health.v1 follows readiness and draining; reflection describes every service."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from serving.grpc.server import SERVICES

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _check(stub, service: str = "") -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status


async def test_health_per_service_and_draining(grpc_app):
    stub = health_pb2_grpc.HealthStub(grpc_app.channel)
    for service in ("", *SERVICES):
        assert await _check(stub, service) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _check(stub, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    grpc_app.server.health.set_serving(False)
    assert await _check(stub) == NOT_SERVING
    grpc_app.server.health.set_serving(None)
    assert await _check(stub, SERVICES[0]) == SERVING

    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICES[2]))
    assert (await watch.read()).status == SERVING
    grpc_app.dataplane.start_draining()
    async with asyncio.timeout(5):
        assert (await watch.read()).status == NOT_SERVING
    watch.cancel()
    for service in ("", *SERVICES):
        assert await _check(stub, service) == NOT_SERVING


def _describe(target: str) -> tuple[list[str], list[str], list[str]]:
    with grpc.insecure_channel(target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = DescriptorPool(db)
        predict = pool.FindServiceByName("tensorflow.serving.PredictionService")
        v2 = pool.FindServiceByName("inference.GRPCInferenceService")
        return services, [m.name for m in predict.methods], [m.name for m in v2.methods]


async def test_reflection_lists_and_describes_services(grpc_app):
    services, predict_methods, v2_methods = await asyncio.to_thread(_describe, grpc_app.target)
    assert set(SERVICES) | {"grpc.health.v1.Health",
                            "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    assert {"Predict", "GetModelMetadata", "Classify", "Regress"} <= set(predict_methods)
    assert {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
            "ModelInfer"} <= set(v2_methods)
