"""The manifest contract: task optional (a route-safe name), the signature name, warm-up
shapes, batchability, and which directories are versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.models.manifest import MANIFEST_FILE, MODEL_FILE, Manifest, list_versions

BASE = {"name": "m", "version": 1, "sha256": "0" * 64,
        "inputs": [{"name": "ids", "dtype": "int64", "shape": [-1, -1]},
                   {"name": "text", "dtype": "object", "shape": [-1]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 2]}]}


def test_a_generic_manifest_needs_no_task_labels_or_postprocessing() -> None:
    manifest = Manifest.model_validate(BASE)
    assert manifest.task is None and manifest.labels == [] and manifest.postprocessing is None
    assert manifest.signature_name == "serving_default" and manifest.batched


def test_a_task_is_any_name_a_route_can_carry() -> None:
    """Which tasks exist, and what each needs of the manifest, is checked at load
    (serving/tasks/; tests/unit/test_tasks.py)."""
    assert Manifest.model_validate(BASE | {"task": "audio-tags_2"}).task == "audio-tags_2"
    for name in ("Audio", "a/b", "a:predict", "", "2d"):
        with pytest.raises(ValidationError, match="task"):
            Manifest.model_validate(BASE | {"task": name})


@pytest.mark.parametrize(("shapes", "ok"), [
    ({"ids": [-1, 8]}, True), ({"ids": [2, 8]}, True), ({"ids": [8]}, False),
    ({"ids": [-1, -1]}, False), ({"nope": [-1, 8]}, False), ({"ids": [-1, 0]}, False)])
def test_warmup_shapes_must_fit_an_input(shapes: dict, ok: bool) -> None:
    if ok:
        assert Manifest.model_validate(BASE | {"warmup_shapes": shapes}).warmup_shapes == shapes
    else:
        with pytest.raises(ValidationError, match="warmup_shapes"):
            Manifest.model_validate(BASE | {"warmup_shapes": shapes})


@pytest.mark.parametrize(("output_shape", "batched"), [([-1, 2], True), ([2], False),
                                                        ([], False), ([3, 2], False)])
def test_batched_only_when_every_tensor_starts_with_a_dynamic_dim(output_shape, batched):
    outputs = [{"name": "y", "dtype": "float32", "shape": output_shape}]
    assert Manifest.model_validate(BASE | {"outputs": outputs}).batched is batched


def test_versions_are_dirs_with_a_manifest_or_a_bare_model(tmp_path: Path) -> None:
    for version, files in {"1": [MANIFEST_FILE], "2": [MODEL_FILE], "3": ["labels.txt"],
                           "4": [MODEL_FILE, MANIFEST_FILE], "x": [MODEL_FILE]}.items():
        (tmp_path / version).mkdir()
        for name in files:
            (tmp_path / version / name).write_text("{}")
    assert list_versions(tmp_path) == [1, 2, 4]
