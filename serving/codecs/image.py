"""Image bytes → float32 HxWx3 in [0, 1], resized as in training.

Manifest ``preprocessing`` keys: ``height``, ``width``, ``channels`` (3),
``scale`` (1/255), ``resample`` ("bilinear").
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serving.errors import InvalidInput, UnsupportedMediaType

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
DEFAULT_MAX_PIXELS = 40_000_000


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes safely: known formats only, declared size checked before decoding."""
    if not data:
        raise InvalidInput("image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise UnsupportedMediaType(f"image format {img.format} is not supported "
                                           f"(use one of {', '.join(sorted(ALLOWED_FORMATS))})")
            width, height = img.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise InvalidInput(f"image of {width}x{height} pixels exceeds the limit of "
                                   f"{max_pixels} pixels")
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
            return img
    except (UnidentifiedImageError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise InvalidInput(f"cannot decode image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidInput(f"cannot decode image (corrupt or truncated): {exc}") from exc


@dataclass(frozen=True)
class ImageCodec:
    height: int = 150
    width: int = 150
    scale: float = 1.0 / 255.0
    resample: str = "bilinear"
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_preprocessing(cls, pre: dict[str, Any], **overrides: Any) -> ImageCodec:
        return cls(height=int(pre.get("height", 150)), width=int(pre.get("width", 150)),
                   scale=float(pre.get("scale", 1.0 / 255.0)),
                   resample=str(pre.get("resample", "bilinear")), **overrides)

    def to_preprocessing(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "channels": 3,
                "scale": self.scale, "resample": self.resample}

    def from_pil(self, img: Image.Image) -> np.ndarray:
        """An RGB array of the model's size; used for files in training and bytes in serving."""
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        if rgb.size != (self.width, self.height):
            rgb = rgb.resize((self.width, self.height), _RESAMPLE[self.resample])
        pixels = np.array(rgb, dtype=np.float32)
        pixels *= np.float32(self.scale)  # in place: the same float32 product, one array less
        return pixels

    def decode(self, data: bytes) -> np.ndarray:
        """Image bytes → (height, width, 3) float32."""
        return self.from_pil(open_image(data, max_pixels=self.max_pixels))
