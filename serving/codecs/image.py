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


# Peak memory of a decode per declared pixel (Pillow 13, 4096x4096 images of every allowed
# format and mode, docs/reliability.md): WebP's decoder holds the image about four times
# over (16.5 bytes a pixel); every other format stays under 9.3 (float TIFF).
DECODE_BYTES_PER_PIXEL = 10
_DECODE_BYTES_PER_PIXEL = {"WEBP": 17}


@dataclass(frozen=True)
class DeclaredImage:
    """What an image's header says it is: what decoding it will cost."""

    width: int
    height: int
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decode_bytes(self) -> int:
        """The most memory decoding it takes (the codec's output included)."""
        return self.pixels * _DECODE_BYTES_PER_PIXEL.get(self.format, DECODE_BYTES_PER_PIXEL)


@contextmanager
def _decode_errors() -> Iterator[None]:
    """Every way a decoder rejects bytes, as InvalidInput in our words (the library's in
    ``detail``, for the log)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError as exc:
        raise InvalidInput("cannot decode image: not an image in a supported format",
                           detail=str(exc)) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput("cannot decode image: its declared size exceeds the pixel limit",
                           detail=str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidInput("cannot decode image: corrupt or truncated",
                           detail=f"{type(exc).__name__}: {exc}") from exc


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


def declared_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DeclaredImage:
    """Size and format from the header alone (nothing decoded), checked against the limit.

    Reading a header costs time in proportion to the header's bytes, never to the pixels.
    """
    if data.startswith(_JPEG_SOI):
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            pass  # Pillow reads it, or says what is wrong with it
        else:
            _check_size(width, height, max_pixels)
            return DeclaredImage(width, height, "JPEG")
    with _decode_errors():
        img = _open_checked(data, max_pixels)
        return DeclaredImage(img.width, img.height, str(img.format))


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
