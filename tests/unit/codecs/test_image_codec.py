"""ImageCodec: decoding, resizing and scaling exactly as training does, and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.codecs import ImageCodec
from serving.codecs.image import open_image
from serving.errors import InvalidInput, UnsupportedMediaType


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)),
                          np.broadcast_to(y, (height, width, 1)),
                          np.full((height, width, 1), 128, np.uint8)], axis=2)
    return Image.fromarray(rgb)


def test_decode_resizes_to_model_size_and_scales_to_unit_range() -> None:
    out = ImageCodec(height=150, width=150).decode(encode(gradient()))
    assert out.shape == (150, 150, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[..., 2].mean() == pytest.approx(128 / 255, abs=1e-6)


def test_bytes_and_pil_paths_agree() -> None:
    """Training decodes files with from_pil; serving decodes bytes; both must match."""
    codec, img = ImageCodec(), gradient()
    np.testing.assert_array_equal(codec.decode(encode(img)), codec.from_pil(img))


def test_grayscale_and_rgba_become_rgb() -> None:
    codec = ImageCodec(height=8, width=8)
    gray = codec.decode(encode(Image.new("L", (8, 8), 200)))
    rgba = codec.decode(encode(Image.new("RGBA", (8, 8), (10, 20, 30, 0))))
    assert gray.shape == rgba.shape == (8, 8, 3)
    np.testing.assert_allclose(gray, 200 / 255, rtol=1e-6)
    np.testing.assert_allclose(rgba[0, 0], np.array([10, 20, 30]) / 255, rtol=1e-6)


def test_jpeg_and_exif_orientation() -> None:
    img = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = open_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (20, 40)


def test_manifest_round_trip() -> None:
    codec = ImageCodec(height=96, width=64, resample="nearest")
    assert ImageCodec.from_preprocessing(codec.to_preprocessing()) == codec


@pytest.mark.parametrize("data", [b"", b"not an image at all", encode(gradient())[:60]])
def test_empty_garbage_and_truncated_bytes_are_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        ImageCodec().decode(data)


def test_unsupported_format_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType):
        ImageCodec().decode(encode(Image.new("RGB", (4, 4)), "PPM"))


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(InvalidInput, match="exceeds the limit"):
        ImageCodec(max_pixels=100).decode(encode(gradient(20, 20)))


def photo(width: int = 150, height: int = 150) -> Image.Image:
    """Smooth gradients plus noise: every 8x8 block has detail for the DCT to keep."""
    rng = np.random.default_rng(7)
    base = np.asarray(gradient(width, height), dtype=np.int16)
    noisy = base + rng.integers(-40, 40, base.shape, dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


JPEG_VARIANTS = {
    "4:2:0": {"subsampling": 2},
    "4:2:2": {"subsampling": 1},
    "4:4:4": {"subsampling": 0, "quality": 95},
    "progressive": {"progressive": True, "optimize": True},
    "exif without orientation": {"exif": Image.Exif().tobytes()},
    "icc profile": {"icc_profile": b"not really a profile, but an APP2 segment"},
    "restart markers": {"restart_marker_blocks": 4},
}


@pytest.mark.parametrize("size", [(150, 150), (203, 97)], ids=["model size", "resized"])
@pytest.mark.parametrize("options", JPEG_VARIANTS.values(), ids=JPEG_VARIANTS.keys())
def test_fast_jpeg_path_gives_pillows_pixels(options: dict, size: tuple[int, int]) -> None:
    """simplejpeg and Pillow must agree to the bit, or serving drifts from training."""
    codec, data = ImageCodec(), encode(photo(*size), "JPEG", **options)
    np.testing.assert_array_equal(codec.decode(data), codec.from_pil(open_image(data)))


def test_fast_jpeg_path_matches_pillow_on_real_photos() -> None:
    from loadtest.payloads import load_payloads

    codec = ImageCodec()
    for data in load_payloads().images:
        np.testing.assert_array_equal(codec.decode(data), codec.from_pil(open_image(data)))


XMP_TURNED = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
              b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
              b'tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def test_turned_and_grey_jpegs_come_out_as_pillow_reads_them() -> None:
    """An orientation in EXIF or in XMP turns the photo; grey is spread to three channels."""
    exif = Image.Exif()
    exif[0x0112] = 6
    codec = ImageCodec(height=32, width=32)  # square: a missed turn would show
    turned = [encode(photo(40, 20), "JPEG", exif=exif.tobytes()),
              encode(photo(40, 20), "JPEG", xmp=XMP_TURNED)]
    for data in [*turned, encode(photo(16, 16).convert("L"), "JPEG")]:
        np.testing.assert_array_equal(codec.decode(data), codec.from_pil(open_image(data)))
    assert all(open_image(data).size == (20, 40) for data in turned)


def test_multi_frame_jpeg_gives_its_first_frame() -> None:
    """MPO (phone cameras): a JPEG with extra frames appended."""
    first, second = photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    data = buf.getvalue()
    codec, expected = ImageCodec(), ImageCodec().decode(encode(first, "JPEG"))
    np.testing.assert_array_equal(codec.decode(data), expected)
    np.testing.assert_array_equal(codec.from_pil(open_image(data)), expected)


@pytest.mark.parametrize("cut", [0.5, 0.98])
def test_truncated_jpeg_is_invalid_input(cut: float) -> None:
    data = encode(photo(), "JPEG")
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        ImageCodec().decode(data[:int(len(data) * cut)])
