"""The digit task: a handwritten digit, as an image or as 784 numbers → ten labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.codecs import DigitCodec
from serving.models.manifest import Manifest
from serving.tasks.base import Feature, Payload, single_feature, upload_items
from serving.tasks.classification import ClassificationTask
from serving.wire.b64 import b64_bytes, is_b64

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.decoding import Decoder


class DigitTask(ClassificationTask[DigitCodec]):
    name = "digit"
    summary = 'A digit image (raw, multipart or {"b64"}), or 784 numbers / a 28x28 array.'
    rest_example: ClassVar[dict[str, Any]] = {"inputs": [[0.0] * 784]}
    number_keys: ClassVar[frozenset[str]] = frozenset({"input", "inputs"})

    def number_items(self, key: str, array: np.ndarray) -> list[Any] | None:
        """{"input": numbers} or {"inputs": [numbers, ...]}, 784 or 28x28 each."""
        if key == "input" and array.ndim in (1, 2):
            return [array]
        if key == "inputs" and array.ndim in (2, 3):
            return list(array)
        return None

    def codec(self, manifest: Manifest, version_dir: Path, settings: Settings) -> DigitCodec:
        return DigitCodec.from_preprocessing(manifest.preprocessing,
                                             max_pixels=settings.max_image_pixels)

    def request_items(self, payload: Payload) -> list[Any]:
        """Images (bytes), {"b64"} objects or numbers, unwrapped by ``rest_item``."""
        return upload_items(payload, "inputs", "input", "digits",
                            "digit body must be a JSON object, an image or a multipart upload")

    def rest_item(self, item: Any, index: int) -> Any:
        return b64_bytes(item, f"digit {index}") if is_b64(item) else item

    def feature_item(self, features: Mapping[str, Feature], index: int) -> Any:
        """784 floats or int64s, or an encoded image."""
        feature = single_feature(features, self.name, index)
        if feature.kind in ("float", "int64"):
            return list(feature.values)
        return self.bytes_feature(feature, index, also="784 floats or ")

    def tensor_item(self, value: Any, index: int) -> Any:
        return self.binary_item(value, index, "a digit")

    async def decode(self, codec: DigitCodec, items: Sequence[Any], decoder: Decoder,
                     deadline: float) -> np.ndarray:
        return await decoder.images(items, max_pixels=codec.max_pixels,
                                    decode=codec.decode_image, deadline=deadline,
                                    numbers=codec.decode_values)
