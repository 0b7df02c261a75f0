"""Class-per-folder image trees: reading them through the serving codec, and writing
the offline default tree (two Fashion-MNIST classes as PNG folders).

Layout, as Keras' ``flow_from_directory`` reads it::

    root/train/<class>/*.png|jpg|...     root/test/<class>/*
    (or root/<class>/* alone: a stratified test split is then taken from it)

Labels are the class folder names sorted; the model is binary, so exactly two.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from serving.codecs import ImageCodec
from serving.errors import ServingError
from training.datasets import stratified_split
from training.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = {7: "sneaker", 9: "ankle_boot"}


@dataclass(frozen=True)
class ImageSplit:
    class_names: list[str]
    x_train: np.ndarray  # (n, h, w, 3) float32 from ImageCodec, or its uint8 pixels
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def list_tree(root: Path) -> tuple[list[str], dict[str, list[Path]]]:
    """Sorted class names and each class's image files; raises DataError on a bad layout."""
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) != 2:
        found = ", ".join(classes) or "none"
        raise DataError(f"{root} must hold exactly two class folders for the binary image "
                        f"model, found {len(classes)}: {found}")
    files = {c: sorted(f for f in (root / c).rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    empty = [c for c, fs in files.items() if not fs]
    if empty:
        raise DataError(f"class folder(s) without images in {root}: {', '.join(empty)} "
                        f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return classes, files


def _take(files: dict[str, list[Path]], limit: int | None, seed: int) -> dict[str, list[Path]]:
    """At most ``limit`` files in all, split evenly over the classes, chosen repeatably."""
    if limit is None:
        return files
    per_class = max(1, limit // len(files))
    rng = np.random.default_rng(seed)
    return {c: sorted(fs[i] for i in rng.permutation(len(fs))[:per_class])
            for c, fs in files.items()}


def decode_files(files: dict[str, list[Path]], classes: list[str], codec: ImageCodec,
                 as_uint8: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Decode with the serving codec (same resize as serving); all bad files reported at once.

    as_uint8: keep each image as the codec's 8-bit pixels (a quarter of the memory);
    ``pixels_from_uint8`` gives back the codec's float32 values exactly.
    """
    arrays, labels, bad = [], [], []
    for label, cls in enumerate(classes):
        for path in files[cls]:
            try:
                pixels = codec.decode(path.read_bytes())
                arrays.append(to_uint8(pixels, codec) if as_uint8 else pixels)
                labels.append(label)
            except (ServingError, OSError) as exc:
                bad.append(f"{path}: {getattr(exc, 'message', exc)}")
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DataError(f"{len(bad)} image file(s) cannot be read: {shown}")
    return np.stack(arrays), np.asarray(labels, dtype=np.int64)


def to_uint8(pixels: np.ndarray, codec: ImageCodec) -> np.ndarray:
    """The codec's 8-bit pixels behind its float32 output (uint8 times ``scale``).

    Checked, not assumed: a codec that computed anything else would fail here instead
    of training on values the server never produces.
    """
    restored = np.rint(pixels / np.float32(codec.scale)).clip(0, 255).astype(np.uint8)
    if not np.array_equal(pixels_from_uint8(restored, codec), pixels):
        raise DataError("the image codec's output is not 8-bit pixels times its scale")
    return restored


def pixels_from_uint8(pixels: np.ndarray, codec: ImageCodec) -> np.ndarray:
    """float32 model input, bit for bit what ``codec.decode`` returns (same product)."""
    return np.multiply(pixels, np.float32(codec.scale), dtype=np.float32)


def tree_files(root: Path, test_fraction: float = 0.2, seed: int = 42
               ) -> tuple[list[str], dict[str, list[Path]], dict[str, list[Path]]]:
    """Classes, train files and test files of ``root/train`` + ``root/test`` (or ``root``)."""
    root = Path(root)
    if not (root / "train").is_dir():
        classes, files = list_tree(root)
        return classes, *_split_files(files, test_fraction, seed)
    classes, train_files = list_tree(root / "train")
    if not (root / "test").is_dir():
        return classes, *_split_files(train_files, test_fraction, seed)
    test_classes, test_files = list_tree(root / "test")
    if test_classes != classes:
        raise DataError(f"train classes {classes} and test classes {test_classes} differ "
                        f"in {root}")
    return classes, train_files, test_files


def load_image_tree(root: Path, codec: ImageCodec, *, train_limit: int | None = None,
                    test_limit: int | None = None, test_fraction: float = 0.2,
                    seed: int = 42, as_uint8: bool = False) -> ImageSplit:
    """Decode the train and test images of a tree (at most ``*_limit`` of each, balanced)."""
    classes, train_files, test_files = tree_files(root, test_fraction, seed)
    x_train, y_train = decode_files(_take(train_files, train_limit, seed), classes, codec,
                                    as_uint8)
    x_test, y_test = decode_files(_take(test_files, test_limit, seed + 1), classes, codec,
                                  as_uint8)
    logger.info("image data %s: classes %s, %d train / %d test images", root, classes,
                len(y_train), len(y_test))
    return ImageSplit(classes, x_train, y_train, x_test, y_test, source=f"image folder {root}")


def load_test_images(root: Path, codec: ImageCodec, *, test_limit: int | None = None,
                     test_fraction: float = 0.2,
                     seed: int = 42) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Only the held-out part, chosen exactly as load_image_tree chooses it."""
    classes, _, test_files = tree_files(root, test_fraction, seed)
    x_test, y_test = decode_files(_take(test_files, test_limit, seed + 1), classes, codec)
    return classes, x_test, y_test


def _split_files(files: dict[str, list[Path]], test_fraction: float,
                 seed: int) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    train, test = {}, {}
    for cls, fs in files.items():
        if len(fs) < 2:
            raise DataError(f"class {cls!r} needs at least two images to split train/test")
        tr, te = stratified_split(np.zeros(len(fs), dtype=np.int64), test_fraction, seed)
        train[cls], test[cls] = [fs[i] for i in tr], [fs[i] for i in te]
    return train, test


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped): big-endian dims after a 4-byte magic number."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {np.prod(dims)} values, got {body.size}")
    return body.reshape(dims)


def write_class_tree(out: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                     classes: dict[int, str], per_class_limit: int | None = None) -> Path:
    """Write uint8 images as ``out/<split>/<class>/<index>.png``, atomically (temp, rename).

    A tree already marked complete is reused as it is.
    """
    if (out / ".complete").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for split, (images, labels) in splits.items():
            for label, name in classes.items():
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in np.flatnonzero(labels == label)[:per_class_limit]:
                    Image.fromarray(images[i]).save(folder / f"{i:05d}.png")
        (tmp / ".complete").write_text(" ".join(classes.values()) + "\n")
        if out.exists():  # an incomplete earlier attempt
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote the %s image tree to %s", "/".join(classes.values()), out)
    return out


def write_fashion_mnist_tree(out: Path, source: Path = FASHION_MNIST_DIR,
                             classes: dict[int, str] | None = None,
                             per_class_limit: int | None = None) -> Path:
    """Two Fashion-MNIST classes (default sneaker, ankle boot) as PNG folders."""
    if (out / ".complete").is_file():
        return out
    if not (source / "train-images-idx3-ubyte.gz").is_file():
        raise DataError(f"Fashion-MNIST not found in {source} (install the Debian package "
                        "dataset-fashion-mnist, e.g. `make data`), or pass --image-data-dir "
                        "with a train/<class>/ and test/<class>/ image folder")
    splits = {split: (read_idx(source / f"{prefix}-images-idx3-ubyte.gz"),
                      read_idx(source / f"{prefix}-labels-idx1-ubyte.gz"))
              for split, prefix in (("train", "train"), ("test", "t10k"))}
    return write_class_tree(out, splits, classes or FASHION_MNIST_CLASSES, per_class_limit)


def default_image_dir() -> Path:
    """Where the offline default tree is written (a per-user cache, not the repository)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "modelserve" / "fashion-mnist-sneaker-ankle_boot"
