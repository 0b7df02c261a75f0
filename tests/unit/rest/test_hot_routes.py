"""The hot lanes' path matching: the routes FastAPI declares, and nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serving.rest.hot_routes import HotRoutes


async def _task(request: Any) -> Any:
    return ("task", request)


def _tensor(kind: str):
    async def endpoint(request: Any, name: str, version: str | None, label: str | None) -> Any:
        return (kind, request, name, version, label)
    return endpoint


ROUTES = HotRoutes({"/v1/digit:predict": _task}, tfserving=_tensor("tfs"), v2=_tensor("v2"))


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/digit:predict", ("task", "r")),
    ("/v1/models/digit:predict", ("tfs", "r", "digit", None, None)),
    ("/v1/models/digit/versions/3:predict", ("tfs", "r", "digit", "3", None)),
    ("/v1/models/digit/labels/latest:predict", ("tfs", "r", "digit", None, "latest")),
    ("/v1/models/my.model-2/versions/x:predict", ("tfs", "r", "my.model-2", "x", None)),
    ("/v2/models/digit/infer", ("v2", "r", "digit", None, None)),
    ("/v2/models/digit/versions/1/infer", ("v2", "r", "digit", "1", None)),
])
def test_declared_routes_match_with_their_parameters(path: str, expected: tuple) -> None:
    endpoint = ROUTES.match(path)
    assert endpoint is not None
    assert asyncio.run(endpoint("r")) == expected


@pytest.mark.parametrize("path", [
    "/v1/text", "/v1/models/:predict", "/v1/models/a/b:predict", "/v1/models/a/versions:predict",
    "/v1/models/a/versions/1/x:predict", "/v1/models/a/versions/:predict", "/v1/models//:predict",
    "/v1/models/digit:predictx", "/v1/models/digit/metadata", "/v2/models/digit/labels/x/infer",
    "/v2/models/digit/ready", "/v2/models/infer", "/v2/models//infer", "/v2/models/a/b/infer",
    "/v2/repository/index", "/v1/digit:predict/",
])
def test_anything_else_is_left_to_fastapi(path: str) -> None:
    assert ROUTES.match(path) is None


def test_without_tensor_endpoints_only_exact_paths_match() -> None:
    routes = HotRoutes({"/v1/digit:predict": _task})
    assert routes.match("/v1/models/digit:predict") is None
    assert routes.match("/v1/digit:predict") is _task
