"""Small helpers that write real image files for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_images(folder: Path, count: int, value: int, size: int = 12) -> list[Path]:
    """``count`` PNGs of a noisy gray level (distinct per class) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    paths = []
    for i in range(count):
        pixels = np.clip(rng.normal(value, 10, (size, size)), 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def write_tree(root: Path, classes: dict[str, int], train: int = 6, test: int = 3) -> Path:
    for name, value in classes.items():
        write_images(root / "train" / name, train, value)
        write_images(root / "test" / name, test, value + 1)
    return root
