"""Access control and model-file safety: nothing in the server can unpickle, model
files must match their manifest's sha256, and management RPCs need the API key."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from tests.fixtures.servers import REPO_ROOT
from tests.fixtures.tiny_models import digit_model, write_model_version

UNPICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "torch"}


def _server_modules() -> list[Path]:
    return [p for p in (REPO_ROOT / "serving").rglob("*.py") if "generated" not in p.parts]


def test_no_server_module_can_unpickle() -> None:
    found = []
    for path in _server_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            found += [f"{path.name}: import {n}" for n in names if n in UNPICKLERS]
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                found.append(f"{path.name}: allow_pickle=")
    assert len(_server_modules()) > 20 and found == []


async def test_a_tampered_model_file_is_refused(tmp_path: Path, make_rest_client) -> None:
    version_dir = write_model_version(tmp_path / "models", "digit", 1, digit_model())
    with (version_dir / "model.onnx").open("ab") as f:
        f.write(b"\0")  # still a loadable protobuf; only the checksum can tell
    app = await make_rest_client(repository=tmp_path / "models")
    served = app.dataplane.registry.models()[0]
    assert served.state == "FAILED" and "sha256" in served.error


@pytest.mark.parametrize("method", ["RepositoryModelLoad", "RepositoryModelUnload",
                                    "RepositoryIndex"])
async def test_grpc_management_needs_the_api_key(make_grpc_app, method: str) -> None:
    from serving.grpc.generated import grpc_predict_v2_pb2 as pb
    from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc

    app = await make_grpc_app(api_keys=["k1"])
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    request = getattr(pb, f"{method}Request")()
    if method != "RepositoryIndex":
        request.model_name = "digit"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await getattr(stub, method)(request, metadata=(("authorization", "Bearer k1"),))
    assert app.dataplane.model_ready("digit") == (method != "RepositoryModelUnload")
