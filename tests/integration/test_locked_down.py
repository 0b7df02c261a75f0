"""Locked down: the management API behind a setting, keys required where the settings say so.

Real servers on 127.0.0.1: ServerProcess (REST + gRPC in the test's loop) for what the
routes answer, and the real ``python -m serving`` for the refusal to start.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from starlette.routing import Mount

from serving.config import Settings
from serving.grpc.generated import _pool
from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.grpc.server import SERVICES
from serving.rest.middleware import OPEN_PATHS
from tests.fixtures.servers import REPO_ROOT, bound_socket, free_port, server_settings, wait_ready

KEY = "test-key-7d1f"
AUTH = {"authorization": f"Bearer {KEY}"}
# What stays open with keys configured: health (REST and gRPC) and /metrics, nothing else.
OPEN_RPCS = {"/inference.GRPCInferenceService/ServerLive",
             "/inference.GRPCInferenceService/ServerReady",
             "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}
PATH_VALUES = {"{name}": "digit", "{version}": "1", "{label}": "stable"}
# The keys file the manifests ship (deploy/k8s/components/api-keys): no key in it.
SHIPPED_KEYS_FILE = REPO_ROOT / "deploy" / "k8s" / "components" / "api-keys" / "api-keys.txt"


@pytest.fixture
async def make_server(tiny_model_repository: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_server(**settings)`` -> (REST url, gRPC target, ServerProcess), ready."""
    from serving.server import ServerProcess

    started: list[tuple[Any, asyncio.Task[int], Any]] = []

    async def start(**overrides: Any) -> tuple[str, str, Any]:
        sock = bound_socket()
        port = sock.getsockname()[1]
        settings = server_settings(tiny_model_repository, http_port=port,
                                   grpc_port=free_port(), **overrides)
        server = ServerProcess(settings, sockets=[sock])
        started.append((server, asyncio.create_task(
            server.run(install_signal_handlers=False)), sock))
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url)
        return url, f"127.0.0.1:{server.grpc.port}", server

    yield start
    for server, task, sock in started:
        server.request_stop()
        await asyncio.wait_for(task, timeout=30)
        sock.close()


def test_the_server_defaults_are_closed_where_it_matters() -> None:
    defaults = Settings()
    assert defaults.repository_api is False and defaults.strict_readiness is True
    assert defaults.require_api_keys is False  # `make serve` runs open; deployments set it


async def test_management_api_off_refuses_load_and_unload(make_server) -> None:
    url, target, server = await make_server(repository_api=False)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for verb in ("load", "unload"):
            # Refused before the body is read: garbage gets the same answer.
            for body in (b"", b"{not json"):
                resp = await client.post(f"/v2/repository/models/digit/{verb}", content=body)
                assert resp.status_code == 403, resp.text
                assert "repository_api" in resp.json()["error"]
        index = await client.post("/v2/repository/index")
        assert index.status_code == 200
        assert {(m["name"], m["state"]) for m in index.json()} == {
            ("digit", "READY"), ("image", "READY"), ("text", "READY")}
        assert (await client.get("/v2/health/ready")).status_code == 200
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="digit")),
                 stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="digit")),
                 stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest())]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "repository_api" in refused.value.details()
        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert {m.name for m in index.models} == {"digit", "image", "text"}
    assert all(m.state == "AVAILABLE" for m in server.registry.models())


def rest_routes(app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) for every route the app serves, static files included."""
    found = []
    stack = list(app.routes)
    while stack:
        route = stack.pop()
        # FastAPI 0.16x wraps each included router; older ones list its routes directly.
        included = getattr(route, "original_router", None)
        if included is not None:
            stack += included.routes
        elif isinstance(route, Mount):
            found.append(("GET", f"{route.path}/swagger-ui.css"))
        else:
            path = route.path
            for placeholder, value in PATH_VALUES.items():
                path = path.replace(placeholder, value)
            found += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return found


def documented_routes(app: Any) -> set[tuple[str, str]]:
    """The same from the OpenAPI schema (public API): the walk above must cover these."""
    found = set()
    for path, operations in app.openapi()["paths"].items():
        for placeholder, value in PATH_VALUES.items():
            path = path.replace(placeholder, value)
        found |= {(method.upper(), path) for method in operations}
    return found


async def test_with_keys_only_health_and_metrics_are_open(make_server) -> None:
    # As deployed (deploy/k8s/base/settings.env): pages such as / and /docs need a key too.
    url, target, server = await make_server(api_keys=[KEY], repository_api=False,
                                            open_pages=False)
    routes = rest_routes(server.app)
    assert documented_routes(server.app) <= set(routes) and ("GET", "/metrics") in routes
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for method, path in routes:
            resp = await client.request(method, path, json={})
            if path in OPEN_PATHS:
                assert resp.status_code == 200, (method, path, resp.text)
            else:
                assert resp.status_code == 401, (method, path, resp.status_code)
        # A valid key passes the gateway; the management API is still refused (403).
        resp = await client.post("/v2/repository/models/digit/unload", headers=AUTH)
        assert resp.status_code == 403
        resp = await client.post("/v1/digit:predict", json={"inputs": [[0.0] * 784]},
                                 headers=AUTH)
        assert resp.status_code == 200
    assert {"/v2/health/live", "/v2/health/ready", "/metrics"} == set(OPEN_PATHS)

    methods = [f"/{name}/{m.name}" for name in (*SERVICES, "grpc.health.v1.Health")
               for m in _pool.POOL.FindServiceByName(name).methods if not m.client_streaming]
    async with grpc.aio.insecure_channel(target) as channel:
        for method in methods:
            # An empty message is valid for every request type (all fields default).
            call = channel.unary_stream(method) if method.endswith("/Watch") \
                else channel.unary_unary(method)
            code = await rpc_code(call(b"", timeout=5))
            if method in OPEN_RPCS:
                assert code == grpc.StatusCode.OK, (method, code)
            elif method.startswith("/grpc.health.v1.Health/"):  # open, newer than our servicer
                assert code == grpc.StatusCode.UNIMPLEMENTED, (method, code)
            else:
                assert code == grpc.StatusCode.UNAUTHENTICATED, (method, code)
    assert len(methods) > 10 and set(methods) >= OPEN_RPCS


async def rpc_code(call: Any) -> grpc.StatusCode:
    try:
        if hasattr(call, "read"):  # a stream: its first message is enough
            await call.read()
            call.cancel()
            return grpc.StatusCode.OK
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def serve(repository: Path, *flags: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "serving", "--model-repository", str(repository),
           "--host", "127.0.0.1", "--http-port", str(free_port()), "--grpc-port", "-1",
           "--warmup-batch-sizes", "1", *flags]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("case", ["no keys", "the shipped keys file", "a missing keys file"])
def test_require_api_keys_refuses_to_start_in_one_line(tiny_model_repository: Path,
                                                        tmp_path: Path, case: str) -> None:
    flags = {"no keys": [],
             "the shipped keys file": ["--api-keys-file", str(SHIPPED_KEYS_FILE)],
             "a missing keys file": ["--api-keys-file", str(tmp_path / "absent")]}[case]
    done = serve(tiny_model_repository, "--require-api-keys", *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("modelserve serve: error: "), lines
    assert ("cannot read" if case == "a missing keys file" else "no API key") in lines[0]


async def test_require_api_keys_starts_with_a_key(tiny_model_repository: Path, tmp_path: Path,
                                                  start_server_process) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text(f"# one key\n{KEY}\n")
    handle = start_server_process(tiny_model_repository, "--require-api-keys",
                                  "--api-keys-file", str(keys), "--grpc-port", "-1")
    await wait_ready(handle.url)
    async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
        body = {"inputs": [[0.0] * 784]}
        assert (await client.post("/v1/digit:predict", json=body)).status_code == 401
        assert (await client.post("/v1/digit:predict", json=body,
                                  headers={"x-api-key": KEY})).status_code == 200


# (headers in order, allowed?): REST headers and gRPC metadata are read by one function.
KEY_FORMS = [
    ([("authorization", f"Bearer {KEY}")], True),
    ([("authorization", f"bearer   {KEY}")], True),  # the scheme in any case, spaces
    ([("x-api-key", KEY)], True),
    ([("x-api-key", KEY), ("authorization", "Bearer wrong")], True),  # the first one wins
    ([("authorization", "Bearer wrong"), ("x-api-key", KEY)], False),
    ([("authorization", KEY)], True),  # no scheme: the value is the key
    ([("authorization", f"Basic {KEY}")], False),
    ([("x-api-key", KEY.upper())], False),
]


async def test_rest_and_grpc_read_a_presented_key_alike(make_server) -> None:
    url, target, _ = await make_server(api_keys=[KEY])
    async with httpx.AsyncClient(base_url=url, timeout=10) as client, \
            grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for headers, allowed in KEY_FORMS:
            rest = await client.post("/v2/repository/index", headers=httpx.Headers(headers))
            code = await rpc_code(stub.RepositoryIndex(pb.RepositoryIndexRequest(),
                                                       metadata=tuple(headers)))
            assert rest.status_code == (200 if allowed else 401), headers
            assert code == (grpc.StatusCode.OK if allowed else
                            grpc.StatusCode.UNAUTHENTICATED), headers


async def test_the_repository_index_is_the_same_over_rest_and_grpc(make_server,
                                                                   tiny_model_repository):
    (tiny_model_repository / "text" / "2").mkdir()
    (tiny_model_repository / "text" / "2" / "manifest.json").write_text("{}")  # fails to load
    url, target, _ = await make_server(version_policy="all", strict_readiness=False)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client, \
            grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        indexes = {}
        for ready in (False, True):
            rest = (await client.post("/v2/repository/index", json={"ready": ready})).json()
            index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready))
            assert rest == [{"name": m.name, "version": m.version, "state": m.state,
                             **({"reason": m.reason} if m.reason else {})}
                            for m in index.models]
            indexes[ready] = rest
    failed = [e for e in indexes[False] if e["state"] == "UNAVAILABLE"]
    assert [(e["name"], e["version"]) for e in failed] == [("text", "2")]
    assert "Manifest" in failed[0]["reason"]
    assert indexes[True] == [e for e in indexes[False] if e["state"] == "READY"]
