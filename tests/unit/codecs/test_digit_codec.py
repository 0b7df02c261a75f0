"""DigitCodec: MNIST layout for numbers and images, and clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.codecs import DigitCodec
from serving.errors import InvalidInput


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def digit_image() -> np.ndarray:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255  # a "1": white stroke on black, as MNIST
    return pixels


def test_from_uint8_matches_training_scale() -> None:
    batch = np.stack([digit_image(), 255 - digit_image()])
    out = DigitCodec().from_uint8(batch)
    assert out.shape == (2, 784) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], digit_image().reshape(784) / np.float32(255))


def test_image_is_decoded_like_mnist() -> None:
    codec = DigitCodec()
    np.testing.assert_array_equal(codec.decode_image(png(digit_image())),
                                  codec.from_uint8(digit_image()))


def test_dark_digit_on_light_paper_is_inverted() -> None:
    codec = DigitCodec()
    np.testing.assert_array_equal(codec.decode_image(png(255 - digit_image())),
                                  codec.from_uint8(digit_image()))


def test_larger_image_is_resized_to_28x28() -> None:
    big = np.kron(digit_image(), np.ones((4, 4), np.uint8))  # 112x112
    out = DigitCodec().decode_image(png(big))
    assert out.shape == (784,)
    assert out.reshape(28, 28)[14, 13] > 0.9 and out.reshape(28, 28)[14, 2] < 0.1


@pytest.mark.parametrize("values", [np.full(784, 0.5), np.full((28, 28), 0.5).tolist()])
def test_unit_range_values_pass_through(values: object) -> None:
    out = DigitCodec().decode_values(values)
    assert out.shape == (784,)
    np.testing.assert_allclose(out, 0.5)


def test_0_255_values_are_scaled() -> None:
    np.testing.assert_allclose(DigitCodec().decode_values([255.0] * 784), 1.0)


@pytest.mark.parametrize(("values", "match"), [
    ([0.0] * 10, "784 values"),
    ([[0.0] * 28] * 27, "784 values"),
    ([float("nan")] * 784, "finite"),
    ([-1.0] * 784, r"\[0, 1\]"),
    ([300.0] * 784, r"\[0, 255\]"),
    (["a"] * 784, "numbers"),
    ([10**400] * 784, "numbers"),
    ([[0] * 28] * 27 + [[0] * 27], "numbers"),
])
def test_bad_values_are_invalid_input(values: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        DigitCodec().decode_values(values)
    if isinstance(values, list) and all(isinstance(v, float) for v in values):
        with pytest.raises(InvalidInput, match=match):  # as the REST parser's float64 array
            DigitCodec().decode_values(np.asarray(values, dtype=np.float64))


def _general_path(values: object) -> np.ndarray:
    """What decode_values gave before its shortcuts: np.asarray, then scaling."""
    arr = np.asarray(values, dtype=np.float32).reshape(784)
    return arr * np.float32(1 / 255) if arr.max() > 1 else arr


@pytest.mark.parametrize("form", ["ints 0-255", "floats 0-255", "floats 0-1", "28x28 ints",
                                  "mixed ints and floats", "binary 0/1", "numpy array",
                                  "float64 array (REST)", "float64 28x28 array (REST)",
                                  "float64 unit array (REST)"])
def test_every_number_form_decodes_as_numpy_would(form: str) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, 784)
    pixels[:300] = 0
    values: object = {
        "ints 0-255": pixels.tolist(),
        "floats 0-255": pixels.astype(float).tolist(),
        "floats 0-1": (pixels / 255).tolist(),
        "28x28 ints": pixels.reshape(28, 28).tolist(),
        "mixed ints and floats": [int(v) if i % 2 else float(v) for i, v in enumerate(pixels)],
        "binary 0/1": (pixels > 127).astype(int).tolist(),
        "numpy array": pixels,
        "float64 array (REST)": pixels.astype(np.float64),
        "float64 28x28 array (REST)": pixels.reshape(28, 28).astype(np.float64),
        "float64 unit array (REST)": (pixels / 255).round(4),
    }[form]
    out = DigitCodec().decode_values(values)
    assert out.dtype == np.float32 and out.shape == (784,)
    np.testing.assert_allclose(out, _general_path(values), rtol=0, atol=1e-7)
