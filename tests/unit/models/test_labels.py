"""labels.json: what is accepted, what is refused and why, and how labels resolve."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving.errors import ModelNotFound
from serving.models.labels import (
    MAX_FILE_BYTES,
    LabelsError,
    ModelLabels,
    Shadow,
    check_loaded,
    parse,
)


def test_a_full_file_parses() -> None:
    rollout = parse({"labels": {"stable": 1, "canary": 2},
                     "traffic": {"stable": 95, "canary": 5},
                     "shadow": {"primary": "stable", "candidate": 2, "share": 0.25}})
    assert rollout.labels == {"stable": 1, "canary": 2}
    assert rollout.traffic == (("stable", 95.0), ("canary", 5.0))
    assert rollout.shadow == Shadow(primary=1, candidate=2, share=0.25, shed_above=0.5)
    assert rollout.labels_of(2) == ["canary"]


@pytest.mark.parametrize(("document", "reason"), [
    ([], "JSON object"),
    ({"labels": {"stable": 1}, "extra": 1}, "unknown keys ['extra']"),
    ({"labels": {"latest": 1}}, "not 'latest'"),
    ({"labels": {"1abc": 1}}, "a name is a letter"),
    ({"labels": {"stable": "1"}}, "positive integer"),
    ({"labels": {"stable": True}}, "positive integer"),
    ({"labels": {"stable": 0}}, "positive integer"),
    ({"labels": {"stable": 1}, "traffic": {"canary": 5}}, "does not define"),
    ({"labels": {"stable": 1}, "traffic": {"stable": -1}}, "number >= 0"),
    ({"labels": {"stable": 1}, "traffic": {"stable": 0}}, "not all be 0"),
    ({"labels": {"stable": 1}, "traffic": {}}, "map labels to weights"),
    ({"labels": {"a": 1}, "shadow": {"primary": "a", "candidate": "a"}}, "both version 1"),
    ({"labels": {"a": 1}, "shadow": {"primary": "a", "candidate": "b"}}, "defined label"),
    ({"labels": {"a": 1}, "shadow": {"primary": "a", "candidate": 2, "share": 2}}, "0 to 1"),
    ({"labels": {"a": 1}, "shadow": {"primary": "a", "candidate": 2, "x": 1}}, "['x']"),
])
def test_refused_files_say_why(document: Any, reason: str) -> None:
    with pytest.raises(LabelsError, match=None) as caught:
        parse(document)
    assert reason in str(caught.value)


def test_labels_at_versions_not_loaded_are_refused_by_name() -> None:
    rollout = parse({"labels": {"stable": 1, "canary": 3},
                     "shadow": {"primary": "stable", "candidate": 4}})
    with pytest.raises(LabelsError) as caught:
        check_loaded(rollout, "m", {1, 2})
    assert str(caught.value) == ("canary -> 3, shadow candidate -> 4: not a loaded version "
                                 "of 'm' (loaded: 1, 2)")
    check_loaded(parse({"labels": {"stable": 1}}), "m", {1, 2})


class _Registry:
    def __init__(self, repository: Path, available: dict[str, list[int]]) -> None:
        self.repository = repository
        self.available = available

    def models(self) -> list[Any]:
        return [SimpleNamespace(name=n, version=v, state="AVAILABLE")
                for n, versions in self.available.items() for v in versions]


def test_refresh_applies_keeps_old_on_refusal_and_forgets_a_removed_file(
        tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "labels.json"
    registry: Any = _Registry(tmp_path, {"m": [1, 2]})
    labels = ModelLabels(tmp_path)
    path.write_text(json.dumps({"labels": {"stable": 1}}))
    labels.refresh(registry)
    assert labels.resolve("m", "stable") == 1 and labels.resolve("m", "latest") is None

    path.write_text(json.dumps({"labels": {"stable": 7}}))
    labels.refresh(registry)
    assert labels.resolve("m", "stable") == 1  # the old labels keep working
    assert "stable -> 7" in (labels.error("m") or "")

    registry.available["m"].append(7)  # the version loads later: the retry applies it
    labels.refresh(registry)
    assert labels.resolve("m", "stable") == 7 and labels.error("m") is None

    path.write_bytes(b"{" * (MAX_FILE_BYTES + 1))
    labels.refresh(registry)
    assert "larger than" in (labels.error("m") or "")
    path.write_text("{not json")
    labels.refresh(registry)
    assert "not valid JSON" in (labels.error("m") or "")
    assert labels.resolve("m", "stable") == 7

    path.unlink()
    labels.refresh(registry)
    with pytest.raises(ModelNotFound, match="not assigned"):
        labels.resolve("m", "stable")
    assert labels.error("m") is None
