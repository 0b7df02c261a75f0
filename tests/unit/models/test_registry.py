"""ModelRegistry: loading, checks (checksum, manifest, signature), version policy,
failed versions skipped, per-model batching, load/unload/reload of single versions."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from serving.codecs import DigitCodec, ImageCodec, TextCodec
from serving.config import Settings
from serving.errors import ModelNotFound, ModelNotReady, ShuttingDown
from serving.metrics import Metrics
from serving.models.registry import ModelRegistry, VersionPolicy
from serving.models.served_model import warmup_sizes
from serving.models.watcher import RepositoryControl
from tests.fixtures.tiny_models import (
    digit_model,
    digit_reference,
    image_model,
    text_model,
    text_reference,
    write_model_version,
)


def settings(repo, **kw) -> Settings:
    return Settings(**{"model_repository": repo, "providers": "cpu", "intra_op_threads": 1} | kw)


async def loaded(repo, **kw) -> ModelRegistry:
    registry = ModelRegistry(settings(repo, **kw), Metrics())
    await registry.load()
    return registry


async def test_loads_the_default_models_with_codecs_and_providers(tiny_model_repository):
    registry = await loaded(tiny_model_repository)
    assert registry.ready
    assert [(m.name, m.version, m.state) for m in registry.models()] == [
        ("digit", 1, "AVAILABLE"), ("image", 1, "AVAILABLE"), ("text", 1, "AVAILABLE")]
    assert isinstance(registry.get("digit").codec, DigitCodec)
    assert isinstance(registry.get("image").codec, ImageCodec)
    text = registry.get("text")
    assert isinstance(text.codec, TextCodec)
    assert text.providers == ["CPUExecutionProvider"]
    assert sorted(text.warmup_timings) == [1, 8, 32]
    tokens = text.codec.encode(["good fun", "awful"])
    out = await text.infer({"tokens": tokens})
    np.testing.assert_allclose(out["probability"][:, 0],
                               [text_reference("good fun"), text_reference("awful")], rtol=1e-6)
    await registry.close()
    assert not registry.ready
    assert {m.state for m in registry.models()} == {"END"}


async def test_infer_through_the_batcher_is_exact(tiny_model_repository):
    registry = await loaded(tiny_model_repository)
    served = registry.get("digit")
    xs = [np.random.default_rng(i).random((1 + i % 3, 784), dtype=np.float32)
          for i in range(100)]
    outs = await asyncio.gather(*(served.infer({"pixels": x}) for x in xs))
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out["probabilities"], digit_reference(x), rtol=1e-5,
                                   atol=1e-6)
    await registry.close()


@pytest.mark.parametrize("text, available, chosen", [
    ("latest", [1, 2, 3], [3]),
    ("latest:2", [1, 2, 3], [2, 3]),
    ("latest:5", [1, 2], [1, 2]),
    ("all", [1, 4], [1, 4]),
    ("specific:1,3", [1, 2, 3], [1, 3]),
    ("specific:7", [1, 2], []),
])
def test_version_policy(text, available, chosen):
    assert VersionPolicy.parse(text).select(available) == chosen


@pytest.mark.parametrize("text", ["newest", "latest:0", "specific:", "specific:a"])
def test_bad_version_policy_is_refused(text):
    with pytest.raises(ValueError, match="version policy"):
        VersionPolicy.parse(text)


async def test_latest_n_serves_versions_and_get_picks_latest(tmp_path):
    for v in (1, 2, 3):
        write_model_version(tmp_path, "digit", v, digit_model())
    registry = await loaded(tmp_path, version_policy="latest:2")
    assert [m.version for m in registry.models()] == [2, 3]
    assert registry.get("digit").version == 3
    assert registry.get("digit", 2).version == 2
    with pytest.raises(ModelNotFound):
        registry.get("digit", 1)
    with pytest.raises(ModelNotFound):
        registry.get("nope")
    await registry.close()


async def test_bad_versions_fail_alone_and_others_keep_serving(tmp_path):
    write_model_version(tmp_path, "digit", 1, digit_model())
    write_model_version(tmp_path, "digit", 2, digit_model(), sha256="0" * 64)
    write_model_version(tmp_path, "digit", 3, b"garbage", inputs=[
        {"name": "pixels", "dtype": "float32", "shape": [-1, 784]}], outputs=[
        {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}],
        postprocessing={"kind": "softmax", "output": "probabilities"})
    bad_manifest = write_model_version(tmp_path, "digit", 4, digit_model())
    (bad_manifest / "manifest.json").write_text("{not json")
    # The manifest claims int32 input: the session disagrees.
    write_model_version(tmp_path, "digit", 5, digit_model(), inputs=[
        {"name": "pixels", "dtype": "int32", "shape": [-1, 784]}])
    write_model_version(tmp_path, "image", 1, image_model(), task="image",
                        labels=["a", "b"], postprocessing={"kind": "sigmoid",
                                                           "output": "probability"})
    registry = await loaded(tmp_path, version_policy="all")
    states = {(m.name, m.version): (m.state, m.error) for m in registry.models()}
    assert states[("digit", 1)] == ("AVAILABLE", None)
    assert states[("image", 1)] == ("AVAILABLE", None)
    assert "sha256" in states[("digit", 2)][1]
    assert states[("digit", 3)][0] == "FAILED"
    # The runtime's message names the file's absolute path: the log's, not the clients'.
    assert str(tmp_path) not in states[("digit", 3)][1]
    assert "ONNXRuntimeError" not in states[("digit", 3)][1]
    assert "not valid JSON" in states[("digit", 4)][1]
    assert registry.models()[3].manifest.task is None  # placeholder keeps status working
    assert "input pixels is float32, manifest says int32" in states[("digit", 5)][1]
    assert registry.ready
    assert registry.get("digit").version == 1  # the newest *available* one
    with pytest.raises(ModelNotReady, match="FAILED: sha256"):
        registry.get("digit", 2)
    out = await registry.get("digit").infer({"pixels": np.zeros((1, 784), np.float32)})
    assert out["probabilities"].shape == (1, 10)
    await registry.close()


async def test_model_with_only_failed_versions_is_not_ready(tmp_path):
    write_model_version(tmp_path, "digit", 1, digit_model(), sha256="1" * 64)
    registry = await loaded(tmp_path)
    with pytest.raises(ModelNotReady, match="no available version"):
        registry.get("digit")
    await registry.close()


async def test_fixed_batch_session_is_refused_when_the_manifest_says_dynamic(tmp_path):
    model = text_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # fixed batch of 1
    write_model_version(tmp_path, "text", 1, model, task="text", inputs=[
        {"name": "tokens", "dtype": "int32", "shape": [-1, 100]}], labels=["n", "p"],
        postprocessing={"kind": "sigmoid", "output": "probability"},
        assets={"tokenizer.json": "{}"})
    registry = await loaded(tmp_path)
    assert "has shape [1, 100], manifest says [-1, 100]" in registry.models()[0].error
    await registry.close()


async def test_manifest_and_config_batching_override_defaults(tmp_path):
    write_model_version(tmp_path, "digit", 1, digit_model(),
                        batching={"max_batch_size": 4, "max_queue_delay_ms": 7})
    write_model_version(tmp_path, "other", 1, digit_model())
    registry = await loaded(tmp_path, max_batch_size=16, warmup_batch_sizes=[1, 8, 64])
    digit, other = registry.get("digit"), registry.get("other")
    assert (digit.batcher.max_batch_size, digit.batcher.max_queue_delay_s) == (4, 0.007)
    assert sorted(digit.warmup_timings) == [1, 4]
    assert other.batcher.max_batch_size == 16 and sorted(other.warmup_timings) == [1, 8, 16]
    await registry.close()
    registry = await loaded(tmp_path, model_batching={"digit": {"max_batch_size": 2}})
    assert registry.get("digit").batcher.max_batch_size == 2  # config beats the manifest
    await registry.close()


def test_warmup_sizes_are_capped_and_include_the_maximum():
    assert warmup_sizes(Settings(warmup_batch_sizes=[1, 8, 32, 128]), 64) == [1, 8, 32, 64]
    assert warmup_sizes(Settings(warmup_batch_sizes=[]), 4) == [4]


async def test_new_version_becomes_latest_only_when_warm_and_old_unloads(tmp_path):
    write_model_version(tmp_path, "digit", 1, digit_model())
    registry = await loaded(tmp_path)
    old = registry.get("digit")
    write_model_version(tmp_path, "digit", 2, digit_model())
    control = RepositoryControl(registry, Settings(model_repository=str(tmp_path)))
    await control.start()  # sees version 2, unchanged by the next poll: it loads then
    await control.poll_once()
    assert registry.get("digit").version == 2
    assert old.state == "END"
    with pytest.raises(ShuttingDown):
        await old.batcher.submit({"pixels": np.zeros((1, 784), np.float32)})
    with pytest.raises(ModelNotFound):
        registry.get("digit", 1)
    await registry.close()


async def test_unload_drains_queued_requests(tmp_path):
    write_model_version(tmp_path, "digit", 1, digit_model())
    registry = await loaded(tmp_path)
    served = registry.get("digit")
    requests = [served.infer({"pixels": np.ones((1, 784), np.float32)}) for _ in range(50)]
    tasks = [asyncio.ensure_future(r) for r in requests]
    await asyncio.sleep(0)
    await registry.unload_version("digit", 1, drain_timeout_s=5)
    assert all(t.result()["probabilities"].shape == (1, 10) for t in tasks)
    with pytest.raises(ModelNotFound):
        registry.get("digit", 1)
    await registry.close()


async def test_models_loaded_gauge(tiny_model_repository):
    metrics = Metrics()
    registry = ModelRegistry(settings(tiny_model_repository), metrics)
    await registry.load()
    text = metrics.render()[0].decode()
    assert 'modelserve_model_loaded{model="digit",version="1"} 1.0' in text
    await registry.close()
    assert 'modelserve_model_loaded{model="digit",version="1"} 0.0' in metrics.render()[0].decode()


async def test_missing_repository_serves_nothing(tmp_path):
    registry = await loaded(tmp_path / "absent")
    assert registry.ready and registry.models() == []
    await registry.close()


async def test_manifest_name_must_match_its_directory(tmp_path):
    path = write_model_version(tmp_path, "digit", 1, digit_model())
    data = json.loads((path / "manifest.json").read_text())
    data["name"] = "other"
    (path / "manifest.json").write_text(json.dumps(data))
    registry = await loaded(tmp_path)
    assert "directory says 'digit'" in registry.models()[0].error
    await registry.close()


async def test_tiny_models_run_inline_unless_disabled(tiny_model_repository):
    registry = await loaded(tiny_model_repository)
    digit = registry.get("digit")
    assert digit.runs_inline and digit.max_batch_s < 0.0005
    await registry.close()
    registry = await loaded(tiny_model_repository, inline_batch_max_ms=0)
    assert not any(m.runs_inline for m in registry.models())
    out = await registry.get("digit").infer({"pixels": np.zeros((2, 784), np.float32)})
    assert out["probabilities"].shape == (2, 10)
    await registry.close()


@pytest.mark.slow
async def test_real_default_models_load_and_batching_keeps_results(real_model_repository):
    # How fast they load and warm is a benchmark figure ("startup to ready", modelserve
    # bench), not a limit for a correctness test on a shared machine.
    registry = await loaded(real_model_repository, intra_op_threads=0)
    assert {(m.name, m.state) for m in registry.models()} == {
        ("digit", "AVAILABLE"), ("text", "AVAILABLE"), ("image", "AVAILABLE")}
    rng = np.random.default_rng(0)
    for served in registry.models():
        spec = served.manifest.inputs[0]
        shape = [4 if d == -1 else d for d in spec.shape]
        rows = (rng.random(shape) * (10 if spec.dtype == "int32" else 1)).astype(spec.dtype)
        alone = served.model.run({spec.name: rows})
        together = await asyncio.gather(*(served.infer({spec.name: rows[i:i + 1]})
                                          for i in range(4)))
        for name, expected in alone.items():
            got = np.concatenate([out[name] for out in together])
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    await registry.close()
