"""The test fixtures' own fallbacks: where a substitute would change what is tested, CI
(``CI=true``) fails instead of substituting; a local run substitutes and warns."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.fixtures import real_models


@pytest.fixture
def no_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real Fashion-MNIST reader, pointed at a folder without the data set."""
    from training import image_data

    reader = functools.partial(image_data.write_fashion_mnist_tree, source=tmp_path / "absent")
    monkeypatch.setattr(image_data, "write_fashion_mnist_tree", reader)


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_ci_fails_instead_of_training_the_image_model_on_digits(
        no_fashion_mnist, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(RuntimeError, match=r"Fashion-MNIST not found.*CI=true.*make data"):
        real_models.write_test_image_tree(tmp_path / "images")
    assert not (tmp_path / "images" / "mnist38").exists()


def test_a_local_run_trains_on_digits_and_says_so(
        no_fashion_mnist, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.warns(UserWarning, match="MNIST digits 3 vs 8 instead"):
        tree = real_models.write_test_image_tree(tmp_path / "images")
    assert tree.name == "mnist38"
    assert sorted(p.name for p in (tree / "train").iterdir()) == ["eight", "three"]
