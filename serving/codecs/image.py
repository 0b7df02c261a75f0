"""Image bytes → float32 HxWx3 in [0, 1], resized as in training.

Manifest ``preprocessing`` keys: ``height``, ``width``, ``channels`` (3),
``scale`` (1/255), ``resample`` ("bilinear").

The common JPEG (colour, upright) is decoded by simplejpeg: the libjpeg-turbo that
Pillow bundles, with the same DCT and upsampling, so the same pixels (tests compare
them), in under half of Pillow's time, which goes mostly to Python around the decoder.
Everything else goes through Pillow. Training decodes its files with this codec too,
so both sides take the same path for the same file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from serving.errors import InvalidInput, UnsupportedMediaType

# MPO: a JPEG with extra frames (phone cameras); the first frame is the photo.
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
DEFAULT_MAX_PIXELS = 40_000_000
_EXIF_ORIENTATION = 0x0112
_TURNED = frozenset(range(2, 9))  # orientations exif_transpose acts on
_JPEG_SOI = b"\xff\xd8\xff"
_SOS, _APP1 = 0xDA, 0xE1


@contextmanager
def _decode_errors() -> Iterator[None]:
    """Every way a decoder rejects bytes, as InvalidInput."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError as exc:
        # Pillow's message names its internal buffer object (a memory address): not for clients.
        raise InvalidInput("cannot decode image: not an image in a known format") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"cannot decode image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidInput(f"cannot decode image (corrupt or truncated): {exc}") from exc


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Read only the header: known formats only, declared size checked before decoding."""
    if not data:
        raise InvalidInput("image is empty")
    img = Image.open(io.BytesIO(data))
    if img.format not in ALLOWED_FORMATS:
        raise UnsupportedMediaType(f"image format {img.format} is not supported "
                                   f"(use one of {', '.join(sorted(ALLOWED_FORMATS))})")
    _check_size(*img.size, max_pixels)
    return img


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise InvalidInput(f"image of {width}x{height} pixels exceeds the limit of "
                           f"{max_pixels} pixels")


def _load_upright(img: Image.Image) -> Image.Image:
    img.load()
    ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
    return img


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes safely with Pillow, turned upright by its EXIF orientation."""
    with _decode_errors():
        return _load_upright(_open_checked(data, max_pixels))


def _colour_jpeg(data: bytes, max_pixels: int) -> bool:
    """A YCbCr JPEG within the size limit, from its header alone (Pillow: mode RGB)."""
    if not data.startswith(_JPEG_SOI):
        return False
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return False  # Pillow reads it, or says what is wrong with it
    if colorspace != "YCbCr":  # grey, CMYK, Adobe RGB: Pillow converts them its own way
        return False
    _check_size(width, height, max_pixels)
    return True


def _has_app1(data: bytes) -> bool:
    """Whether the JPEG's header holds an APP1 segment: the only place (EXIF or XMP) where
    Pillow finds an orientation. True when the header cannot be walked."""
    pos, end = 2, len(data)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == _SOS:
            return False
        elif marker == _APP1:
            return True
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return True


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
        img = None
        with _decode_errors():
            if _colour_jpeg(data, self.max_pixels):
                if _has_app1(data):
                    img = _open_checked(data, self.max_pixels)
                if img is None or img.getexif().get(_EXIF_ORIENTATION, 1) not in _TURNED:
                    # strict: a truncated or corrupt stream raises instead of coming out grey
                    return self._from_rgb(simplejpeg.decode_jpeg(data, colorspace="RGB"))
            return self.from_pil(_load_upright(img or _open_checked(data, self.max_pixels)))

    def _from_rgb(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] != (self.height, self.width):
            return self.from_pil(Image.fromarray(rgb))
        # One pass for cast and scale: the same float32 product as from_pil's two.
        return np.multiply(rgb, np.float32(self.scale), dtype=np.float32)
