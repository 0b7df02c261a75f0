"""The line `modelserve serve` logs once ready."""

from __future__ import annotations

import socket

from serving.banner import ready_banner
from serving.config import Settings
from serving.models.registry import ModelRegistry
from tests.fixtures.servers import server_settings


async def test_ready_banner_names_models_and_addresses(tiny_model_repository) -> None:
    settings = server_settings(tiny_model_repository, host="0.0.0.0", http_port=8123)
    registry = ModelRegistry(settings)
    await registry.load()
    try:
        line = ready_banner(settings, registry, grpc_port=8500)
    finally:
        await registry.close()
    assert line == ("ready: digit v1, image v1, text v1 | playground http://127.0.0.1:8123/ | "
                    "API docs http://127.0.0.1:8123/docs | gRPC 127.0.0.1:8500")


async def test_bound_socket_port_no_grpc_no_playground(tmp_path) -> None:
    settings = Settings(model_repository=tmp_path, host="::1", http_port=0, playground=False)
    registry = ModelRegistry(settings)
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
        line = ready_banner(settings, registry, grpc_port=None, sockets=[sock])
    assert line == f"ready: no models yet | API docs http://[::1]:{port}/docs"
