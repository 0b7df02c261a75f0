"""Text → int32 token ids, identical to Keras' Tokenizer + pad_sequences.

Tokenization cannot live in the ONNX graph, so training fits a
``tf.keras.preprocessing.text.Tokenizer``, ships its ``to_json()`` output as
``tokenizer.json``, and both training (evaluation) and serving tokenize with this
numpy reimplementation. Manifest ``preprocessing`` keys: ``tokenizer`` (file name),
``max_length``, ``padding`` and ``truncating`` ("pre" | "post"), ``max_chars``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import InvalidInput

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


@dataclass
class Tokenizer:
    """The inference half of keras.preprocessing.text.Tokenizer."""

    word_index: dict[str, int]
    num_words: int | None = None
    filters: str = KERAS_FILTERS
    lower: bool = True
    split: str = " "
    char_level: bool = False
    oov_token: str | None = None
    _table: dict[int, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = str.maketrans(dict.fromkeys(self.filters, self.split))

    @classmethod
    def from_keras_json(cls, text: str) -> Tokenizer:
        """Load what ``Tokenizer.to_json()`` wrote (word_index is itself a JSON string there)."""
        config = json.loads(text)
        config = config.get("config", config)
        word_index = config["word_index"]
        if isinstance(word_index, str):
            word_index = json.loads(word_index)
        return cls(word_index={str(k): int(v) for k, v in word_index.items()},
                   num_words=config.get("num_words"), filters=config.get("filters", ""),
                   lower=bool(config.get("lower", True)), split=config.get("split", " "),
                   char_level=bool(config.get("char_level", False)),
                   oov_token=config.get("oov_token"))

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls.from_keras_json(path.read_text(encoding="utf-8"))

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        if self.char_level:
            return list(text)
        return [w for w in text.translate(self._table).split(self.split) if w]

    def text_to_sequence(self, text: str) -> list[int]:
        oov_index = self.word_index.get(self.oov_token) if self.oov_token else None
        ids: list[int] = []
        for word in self.words(text):
            index = self.word_index.get(word)
            if index is not None and not (self.num_words and index >= self.num_words):
                ids.append(index)
            elif oov_index is not None:
                ids.append(oov_index)
        return ids

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.text_to_sequence(t) for t in texts]


def pad_sequences(sequences: Sequence[Sequence[int]], maxlen: int, *, padding: str = "pre",
                  truncating: str = "pre", value: int = 0) -> np.ndarray:
    """keras.utils.pad_sequences for int sequences → (n, maxlen) int32."""
    out = np.full((len(sequences), maxlen), value, dtype=np.int32)
    for row, seq in enumerate(sequences):
        if not len(seq):
            continue
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if padding == "post":
            out[row, : len(kept)] = kept
        else:
            out[row, maxlen - len(kept):] = kept
    return out


@dataclass
class TextCodec:
    tokenizer: Tokenizer
    max_length: int = 100
    padding: str = "post"
    truncating: str = "post"
    max_chars: int = 100_000

    @classmethod
    def from_preprocessing(cls, pre: dict[str, Any], asset_dir: Path,
                           **overrides: Any) -> TextCodec:
        tokenizer = Tokenizer.load(asset_dir / pre.get("tokenizer", "tokenizer.json"))
        return cls(tokenizer=tokenizer, max_length=int(pre.get("max_length", 100)),
                   padding=pre.get("padding", "post"), truncating=pre.get("truncating", "post"),
                   **overrides)

    def to_preprocessing(self, tokenizer_file: str = "tokenizer.json") -> dict[str, Any]:
        return {"tokenizer": tokenizer_file, "max_length": self.max_length,
                "padding": self.padding, "truncating": self.truncating,
                "num_words": self.tokenizer.num_words, "oov_token": self.tokenizer.oov_token}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Strings → (n, max_length) int32 token ids."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"text {i} must be a string, got {type(text).__name__}")
            if len(text) > self.max_chars:  # first: strip() copies the text
                raise InvalidInput(f"text {i} has {len(text)} characters; the limit is "
                                   f"{self.max_chars}")
            if not text.strip():
                raise InvalidInput(f"text {i} is empty")
        sequences = self.tokenizer.texts_to_sequences(texts)
        return pad_sequences(sequences, self.max_length, padding=self.padding,
                             truncating=self.truncating)
