"""The image task: a photo (any size, JPEG, PNG, WebP, ...) → its labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.codecs import ImageCodec
from serving.models.manifest import Manifest
from serving.tasks.base import Payload, upload_items
from serving.tasks.classification import ClassificationTask
from serving.wire.b64 import b64_bytes

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.decoding import Decoder


class ImageTask(ClassificationTask[ImageCodec]):
    name = "image"
    summary = 'Multipart "file" fields, a raw image/* body, or JSON base64 images.'
    rest_example: ClassVar[dict[str, Any]] = {"images": [{"b64": "..."}]}

    def codec(self, manifest: Manifest, version_dir: Path, settings: Settings) -> ImageCodec:
        return ImageCodec.from_preprocessing(manifest.preprocessing,
                                             max_pixels=settings.max_image_pixels)

    def request_items(self, payload: Payload) -> list[Any]:
        """Images (bytes), or base64 strings / {"b64"} objects, unwrapped by ``rest_item``."""
        return upload_items(payload, "images", "image", "base64 images",
                            "image body must be an image, a multipart upload or JSON base64")

    def rest_item(self, item: Any, index: int) -> bytes:
        return item if isinstance(item, bytes) else b64_bytes(item, f"image {index}")

    def tensor_item(self, value: Any, index: int) -> Any:
        return self.binary_item(value, index, "an image")

    async def decode(self, codec: ImageCodec, items: Sequence[Any], decoder: Decoder,
                     deadline: float) -> np.ndarray:
        return await decoder.images(items, max_pixels=codec.max_pixels, decode=codec.decode,
                                    deadline=deadline)
