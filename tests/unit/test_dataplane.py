"""DataPlane: validation, task model choice, output selection, draining, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from serving.dataplane import validate_inputs, validate_tensor
from serving.errors import InvalidInput, ModelNotFound
from serving.models.manifest import TensorSpec
from serving.tasks.classification import probabilities, to_predictions
from tests.fixtures.tiny_models import digit_reference

PIXELS = TensorSpec(name="pixels", dtype="float32", shape=[-1, 784])


def test_validate_tensor_accepts_matching_array() -> None:
    validate_tensor(PIXELS, np.zeros((3, 784), np.float32))


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((1, 784), np.float64), "must be float32"),
    (np.zeros((1, 783), np.float32), "must have shape"),
    (np.zeros((784,), np.float32), "must have shape"),
    (np.zeros((0, 784), np.float32), "at least one item"),
    (np.full((1, 784), np.nan, np.float32), "NaN"),
    (np.full((1, 784), np.inf, np.float32), "NaN or infinity"),
])
def test_validate_tensor_rejects(array: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_tensor(PIXELS, array)


async def test_validate_inputs_names_unknown_and_missing(rest_client) -> None:
    manifest = rest_client.dataplane.model("digit").manifest
    with pytest.raises(InvalidInput, match=r"unknown: \['x'\], missing: \['pixels'\]"):
        validate_inputs(manifest, {"x": np.zeros((1, 784), np.float32)})


def test_sigmoid_probabilities_and_top_k(rest_client) -> None:
    manifest = rest_client.dataplane.model("text").manifest
    probs = probabilities(manifest, np.array([[0.8], [0.1]], np.float32))
    np.testing.assert_allclose(probs, [[0.2, 0.8], [0.9, 0.1]], rtol=1e-6)
    preds = to_predictions(manifest, probs, top_k=1)
    assert [p.label for p in preds] == ["positive", "negative"]
    assert [len(p.top) for p in preds] == [1, 1]


async def test_infer_matches_reference_and_selects_outputs(rest_client) -> None:
    pixels = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    result = await rest_client.dataplane.infer("digit", None, {"pixels": pixels},
                                               protocol="test", deadline=None,
                                               output_names=["probabilities"])
    assert (result.model_name, result.model_version) == ("digit", 1)
    np.testing.assert_allclose(result.outputs["probabilities"], digit_reference(pixels),
                               rtol=1e-5)
    with pytest.raises(InvalidInput, match="no output"):
        await rest_client.dataplane.infer("digit", None, {"pixels": pixels}, protocol="test",
                                          deadline=None, output_names=["nope"])


async def test_task_model_checks_the_task(rest_client) -> None:
    dp = rest_client.dataplane
    assert dp.task_model("digit", None, None).name == "digit"
    with pytest.raises(InvalidInput, match="serves the text task"):
        await dp.predict("digit", [[0.0] * 784], model="text", protocol="test")
    with pytest.raises(ModelNotFound):
        await dp.predict("digit", [[0.0] * 784], model="nope", protocol="test")


async def test_one_bad_item_names_its_index(rest_client) -> None:
    with pytest.raises(InvalidInput, match="item 1"):
        await rest_client.dataplane.predict("digit", [[0.0] * 784, [0.0] * 3], protocol="test")


async def test_draining_turns_readiness_off_and_calls_hooks(rest_client) -> None:
    dp = rest_client.dataplane
    calls: list[str] = []
    dp.on_draining(lambda: calls.append("hook"))
    dp.on_draining(lambda: 1 / 0)  # a broken hook does not stop the others
    dp.on_draining(lambda: calls.append("after"))
    assert dp.ready()
    dp.start_draining()
    dp.start_draining()
    assert not dp.ready() and dp.live()
    assert calls == ["hook", "after"]


async def test_requests_are_counted_by_status(rest_client) -> None:
    dp = rest_client.dataplane
    await dp.predict("text", ["good fun"], protocol="test")
    with pytest.raises(InvalidInput):
        await dp.predict("text", [""], protocol="test")
    body = rest_client.metrics.render()[0].decode()
    assert 'modelserve_requests_total{model="text",protocol="test",status="OK",version="1"} 1.0' \
        in body
    assert 'status="INVALID_ARGUMENT",version="1"} 1.0' in body
