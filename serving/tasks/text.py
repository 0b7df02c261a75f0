"""The text task: a text (a review, say) → its labels, through the model's tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.codecs import TextCodec
from serving.errors import InvalidInput
from serving.models.manifest import Manifest
from serving.tasks.base import Payload, json_items
from serving.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.decoding import Decoder


class TextTask(ClassificationTask[TextCodec]):
    name = "text"
    summary = 'JSON {"text": "..." | [...]} or {"texts": [...]}, or a text/plain body.'
    rest_example: ClassVar[dict[str, Any]] = {"text": ["a great film"]}

    def codec(self, manifest: Manifest, version_dir: Path, settings: Settings) -> TextCodec:
        return TextCodec.from_preprocessing(manifest.preprocessing, version_dir,
                                            max_chars=settings.max_text_chars)

    def request_items(self, payload: Payload) -> list[Any]:
        if payload.kind == "text":
            return [payload.value]
        if payload.kind != "json" or not isinstance(payload.value, dict):
            raise InvalidInput('text body must be JSON {"text": ...} or text/plain')
        return json_items(payload.value, "texts", "text", "strings", list_is_many=True)

    # tf.Example features and string tensor elements are UTF-8 bytes or str: decode()
    # takes both (the length is checked before any UTF-8 is decoded).

    async def decode(self, codec: TextCodec, items: Sequence[Any], decoder: Decoder,
                     deadline: float) -> np.ndarray:
        return await decoder.texts(items, max_chars=codec.max_chars, encode=codec.encode,
                                   deadline=deadline)
