"""Model lifecycle: polling picks up settled versions only, failures keep the serving
version, the v2 repository extension loads/unloads over REST and gRPC (ours and
Triton's client), and management routes are protected by API keys."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.models.manifest import MODEL_FILE, sha256_file
from serving.models.watcher import RepositoryControl
from tests.fixtures.tiny_models import digit_model, write_model_version

ZERO_DIGIT = {"input": [0.0] * 784}


async def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition") -> float:
    """Poll ``predicate`` until true (bounded); the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def states(registry, name: str = "digit") -> dict[int, str]:
    return {m.version: m.state for m in registry.models() if m.name == name}


@pytest.fixture
async def polled(make_rest_client):
    """An in-process app whose repository is polled every 50 ms."""
    controls: list[RepositoryControl] = []

    async def make(**overrides):
        app = await make_rest_client(repository_poll_s=0.05, **overrides)
        await app.dataplane.repository.start()
        controls.append(app.dataplane.repository)
        return app

    yield make
    for control in controls:
        await control.close()


async def test_polling_serves_a_new_version_once_warm_and_drains_the_old(polled, report):
    app = await polled()
    registry = app.dataplane.registry
    old = registry.get("digit")
    write_model_version(app.settings.model_repository, "digit", 2, digit_model())
    took = await wait_for(lambda: registry.get("digit").version == 2, what="version 2 serving")
    await wait_for(lambda: old.state == "END", what="version 1 unloaded")
    resp = await app.client.post("/v1/digit:predict", json=ZERO_DIGIT)
    report("new version via polling", pickup_s=took, states=states(registry),
           answered_by=resp.json()["model_version"])
    assert resp.status_code == 200 and resp.json()["model_version"] == "2"
    assert old.model is None  # the old session is released


async def test_half_copied_version_is_never_loaded(polled, report):
    app = await polled()
    registry, control = app.dataplane.registry, app.dataplane.repository
    version_dir = app.settings.model_repository / "digit" / "2"
    source = write_model_version(app.settings.model_repository / ".staging", "digit", 2,
                                 digit_model())
    data = (source / MODEL_FILE).read_bytes()
    version_dir.mkdir()
    (version_dir / "manifest.json").write_text((source / "manifest.json").read_text())
    # A slow copy: the model file grows across many polls, as `cp` over a network would.
    chunks = np.array_split(np.frombuffer(data, np.uint8), 12)
    polls_while_copying = control.polls
    with (version_dir / MODEL_FILE).open("wb") as out:
        for chunk in chunks:
            out.write(chunk.tobytes())
            out.flush()
            start = control.polls
            await wait_for(lambda s=start: control.polls >= s + 1, what="a poll")
            assert 2 not in states(registry), "a changing version directory was loaded"
    polls_while_copying = control.polls - polls_while_copying
    took = await wait_for(lambda: registry.get("digit").version == 2, what="version 2 serving")
    report("half-copied version", polls_while_copying=polls_while_copying,
           loaded_while_copying=0, pickup_after_copy_s=took, states=states(registry))
    assert states(registry)[2] == "AVAILABLE"


async def test_a_version_that_fails_leaves_the_serving_one(polled, report):
    app = await polled()
    registry, repo = app.dataplane.registry, app.settings.model_repository
    write_model_version(repo, "digit", 2, digit_model(), sha256="0" * 64)  # tampered
    await wait_for(lambda: states(registry).get(2) == "FAILED", what="version 2 FAILED")
    for _ in range(3):  # later polls neither retry the same files nor drop version 1
        start = app.dataplane.repository.polls
        await wait_for(lambda s=start: app.dataplane.repository.polls > s, what="a poll")
    resp = await app.client.post("/v1/digit:predict", json=ZERO_DIGIT)
    index = (await app.client.post("/v2/repository/index")).json()
    report("failed new version", states=states(registry), answered_by=resp.json().get(
        "model_version"), index=index)
    assert resp.status_code == 200 and resp.json()["model_version"] == "1"
    assert {"name": "digit", "version": "2", "state": "UNAVAILABLE"}.items() <= next(
        e for e in index if e["name"] == "digit" and e["version"] == "2").items()
    assert "sha256" in registry.models()[1].error
    write_model_version(repo, "digit", 2, digit_model())  # fixed: served, and 1 retires
    await wait_for(lambda: states(registry) == {1: "END", 2: "AVAILABLE"}, what="fixed v2")


async def test_rest_load_reloads_in_place_and_unload_holds(polled, report):
    app = await polled()
    c, registry = app.client, app.dataplane.registry
    before = registry.get("digit")
    assert (await c.post("/v2/repository/models/digit/load")).status_code == 200
    after = registry.get("digit")
    assert after is not before and after.version == 1 and before.state == "END"
    unload = await c.post("/v2/repository/models/digit/unload", json={"parameters": {}})
    assert unload.status_code == 200, unload.text
    for _ in range(3):  # polling does not bring an unloaded model back
        start = app.dataplane.repository.polls
        await wait_for(lambda s=start: app.dataplane.repository.polls > s, what="a poll")
    gone = await c.post("/v1/digit:predict", json=ZERO_DIGIT)
    ready = await c.get("/v2/models/digit/ready")
    server_ready = await c.get("/v2/health/ready")
    assert (await c.post("/v2/repository/models/digit/load")).status_code == 200
    back = await c.post("/v1/digit:predict", json=ZERO_DIGIT)
    ready_again = await c.get("/v2/health/ready")
    missing = await c.post("/v2/repository/models/nothing/load")
    inline = await c.post("/v2/repository/models/digit/load",
                          json={"parameters": {"config": "{}"}})
    report("REST load/unload", after_unload=gone.status_code, model_ready=ready.status_code,
           server_ready=server_ready.status_code, after_load=back.status_code,
           unknown_model=missing.status_code, inline_config=inline.status_code)
    assert gone.status_code == 503 and ready.status_code == 400
    # strict readiness: an unloaded model takes the server out of rotation until loaded again
    assert server_ready.status_code == 503 and ready_again.status_code == 200
    assert back.status_code == 200
    assert missing.status_code == 400 and "nothing" in missing.json()["error"]
    assert inline.status_code == 400


async def test_explicit_load_of_a_broken_reload_keeps_the_serving_copy(make_rest_client):
    app = await make_rest_client()
    registry = app.dataplane.registry
    serving = registry.get("digit")
    manifest_path = app.settings.model_repository / "digit" / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "f" * 64
    manifest_path.write_text(json.dumps(manifest))
    resp = await app.client.post("/v2/repository/models/digit/load")
    assert resp.status_code == 400 and "sha256" in resp.json()["error"]
    assert registry.get("digit") is serving and serving.state == "AVAILABLE"
    ok = await app.client.post("/v1/digit:predict", json=ZERO_DIGIT)
    assert ok.status_code == 200


async def test_management_routes_need_the_api_key(make_rest_client):
    app = await make_rest_client(api_keys=["k1"])
    c = app.client
    assert (await c.post("/v2/repository/models/digit/unload")).status_code == 401
    assert (await c.post("/v2/repository/index")).status_code == 401
    authed = await c.post("/v2/repository/models/digit/load",
                          headers={"Authorization": "Bearer k1"})
    assert authed.status_code == 200


async def test_grpc_load_unload_ours_and_tritons(make_grpc_app, report):
    from serving.grpc.generated import grpc_predict_v2_pb2 as pb
    from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc

    app = await make_grpc_app()
    stub = pb_grpc.GRPCInferenceServiceStub(app.channel)
    out = await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="text"))
    assert out.isUnloaded and not app.dataplane.model_ready("text")
    out = await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="text"))
    assert out.isLoaded and app.dataplane.model_ready("text")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nothing"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    import tritonclient.grpc as triton  # Triton's own client: model_name is field 2 there

    def triton_calls() -> list[bool]:
        client = triton.InferenceServerClient(app.target)
        try:
            client.unload_model("digit")
            unloaded = not client.is_model_ready("digit")
            client.load_model("digit")
            return [unloaded, client.is_model_ready("digit")]
        finally:
            client.close()

    unloaded, reloaded = await asyncio.to_thread(triton_calls)
    report("gRPC load/unload", ours="ok", triton_unloaded=unloaded, triton_reloaded=reloaded)
    assert unloaded and reloaded


def test_version_signature_sees_size_and_mtime_changes(tmp_path: Path):
    from serving.models.watcher import version_signature

    path = write_model_version(tmp_path, "digit", 1, digit_model())
    declared = json.loads((path / "manifest.json").read_text())["sha256"]
    assert sha256_file(path / MODEL_FILE) == declared
    first = version_signature(path)
    assert first == version_signature(path)
    with (path / MODEL_FILE).open("ab") as f:
        f.write(b"\0")
    assert version_signature(path) != first
    # The file still parses; the checksum on load is what refuses it.
    assert sha256_file(path / MODEL_FILE) != declared
