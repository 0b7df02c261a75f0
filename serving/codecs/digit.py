"""A handwritten digit → 784 float32 in [0, 1], as MNIST: white digit on black, 28x28.

Input is either an image (any size; grayscale; a dark digit on a light background
is inverted, as photos and drawings usually are) or numbers (784 values or 28x28).
Numbers above 1 are read as 0-255 pixel intensities. Manifest ``preprocessing``
keys: ``height``, ``width`` (28), ``scale`` (1/255).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from serving.codecs.image import DEFAULT_MAX_PIXELS, open_image
from serving.codecs.numbers import flat_numbers, flatten_rows
from serving.errors import InvalidInput


@dataclass(frozen=True)
class DigitCodec:
    height: int = 28
    width: int = 28
    scale: float = 1.0 / 255.0
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def size(self) -> int:
        return self.height * self.width

    @classmethod
    def from_preprocessing(cls, pre: dict[str, Any], **overrides: Any) -> DigitCodec:
        return cls(height=int(pre.get("height", 28)), width=int(pre.get("width", 28)),
                   scale=float(pre.get("scale", 1.0 / 255.0)), **overrides)

    def to_preprocessing(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "scale": self.scale,
                "layout": "flattened row-major, white digit on black"}

    def from_uint8(self, pixels: np.ndarray) -> np.ndarray:
        """MNIST-style uint8 images (..., 28, 28) → (..., 784) float32; used by training."""
        flat = pixels.reshape(*pixels.shape[:-2], self.size)
        return flat.astype(np.float32) * np.float32(self.scale)

    def decode_image(self, data: bytes) -> np.ndarray:
        img = open_image(data, max_pixels=self.max_pixels).convert("L")
        if img.size != (self.width, self.height):
            img = img.resize((self.width, self.height), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)
        if _background_is_light(pixels):
            pixels = 255 - pixels
        return self.from_uint8(pixels)

    def decode_values(self, values: Any) -> np.ndarray:
        """784 numbers or a 28x28 nested list/array → (784,) float32."""
        fast = self._fast_values(values)
        if fast is not None:
            return fast
        try:
            arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput("digit must be numbers", detail=str(exc)) from exc
        if arr.shape not in {(self.size,), (self.height, self.width)}:
            raise InvalidInput(f"digit must have {self.size} values or shape "
                               f"[{self.height}, {self.width}], got shape {list(arr.shape)}")
        if not np.all(np.isfinite(arr)):
            raise InvalidInput("digit values must be finite (no NaN or inf)")
        if arr.min() < 0 or arr.max() > 255:
            raise InvalidInput("digit values must lie in [0, 1] or [0, 255]")
        if arr.max() > 1.0:
            arr = arr * np.float32(self.scale)
        return arr.reshape(self.size)


    def _fast_values(self, values: Any) -> np.ndarray | None:
        """The common JSON forms (784 numbers, 28 rows of 28, as lists or as the float64
        array the REST parser reads them into) without ``np.asarray``'s per-element cost;
        None leaves anything unusual to the general path."""
        arr = self._flat(values)
        if arr is None:
            return None
        if arr.dtype == np.uint8:  # integer intensities: finite and in range by type
            if arr.max() > 1:
                return arr.astype(np.float32) * np.float32(self.scale)
            return arr.astype(np.float32)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
            return None  # the general path names the problem
        if arr.max() > 1.0:
            arr = arr * self.scale
        return arr.astype(np.float32)

    def _flat(self, values: Any) -> np.ndarray | None:
        """784 numbers as one flat uint8 or float64 array, without a Python call per
        number; None for anything else."""
        if isinstance(values, np.ndarray):
            if values.dtype != np.float64 or \
                    values.shape not in {(self.size,), (self.height, self.width)}:
                return None
            return values.reshape(self.size)
        if not isinstance(values, list):
            return None
        if len(values) == self.height and isinstance(values[0], list):
            values = flatten_rows(values, self.width)
        if values is None or len(values) != self.size:
            return None
        return flat_numbers(values)


def _background_is_light(pixels: np.ndarray) -> bool:
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(border.mean()) > 127.0
