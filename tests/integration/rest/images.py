"""Encoded test images made with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def solid_rgb(red: int, green: int, blue: int, size: int = 64, fmt: str = "PNG") -> bytes:
    array = np.zeros((size, size, 3), np.uint8)
    array[..., 0], array[..., 1], array[..., 2] = red, green, blue
    return encode(array, fmt)


def digit_png(block: int) -> bytes:
    """A white-on-black 28x28 image lighting rows of pixel block ``block`` (tiny model's class)."""
    flat = np.zeros(784, np.uint8)
    flat[block * 78:(block + 1) * 78] = 255
    return encode(flat.reshape(28, 28))


def digit_values(block: int) -> list[float]:
    flat = np.zeros(784, np.float32)
    flat[block * 78:(block + 1) * 78] = 1.0
    return flat.tolist()
