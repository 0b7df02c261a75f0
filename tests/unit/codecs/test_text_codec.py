"""TextCodec, Tokenizer and pad_sequences without TensorFlow (Keras parity: other file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.codecs import TextCodec, Tokenizer
from serving.codecs.text import pad_sequences
from serving.errors import InvalidInput

WORD_INDEX = {"<OOV>": 1, "the": 2, "movie": 3, "was": 4, "great": 5, "bad": 6}


def keras_json(num_words: int | None = 6, oov: str | None = "<OOV>") -> str:
    """The shape Keras' Tokenizer.to_json() writes: word_index is itself a JSON string."""
    config = {"num_words": num_words, "filters": '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
              "lower": True, "split": " ", "char_level": False, "oov_token": oov,
              "word_index": json.dumps(WORD_INDEX)}
    return json.dumps({"class_name": "Tokenizer", "config": config})


def test_from_keras_json_and_ids() -> None:
    tok = Tokenizer.from_keras_json(keras_json())
    assert tok.text_to_sequence("The movie WAS great!!") == [2, 3, 4, 5]
    # "bad" has index 6 >= num_words: it becomes the OOV id, as in Keras.
    assert tok.text_to_sequence("bad, unknown movie") == [1, 1, 3]


def test_without_oov_unknown_words_are_dropped() -> None:
    tok = Tokenizer.from_keras_json(keras_json(num_words=None, oov=None))
    assert tok.text_to_sequence("bad unknown movie") == [6, 3]


@pytest.mark.parametrize(("padding", "truncating", "expected"), [
    ("post", "post", [[1, 2, 3], [4, 0, 0]]),
    ("pre", "pre", [[2, 3, 4], [0, 0, 4]]),
    ("post", "pre", [[2, 3, 4], [4, 0, 0]]),
    ("pre", "post", [[1, 2, 3], [0, 0, 4]]),
])
def test_pad_sequences(padding: str, truncating: str, expected: list[list[int]]) -> None:
    out = pad_sequences([[1, 2, 3, 4], [4]], 3, padding=padding, truncating=truncating)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_codec_encodes_and_round_trips_preprocessing(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(keras_json())
    codec = TextCodec.from_preprocessing({"tokenizer": "tokenizer.json", "max_length": 5},
                                         tmp_path)
    out = codec.encode(["the movie was great", "bad"])
    np.testing.assert_array_equal(out, [[2, 3, 4, 5, 0], [1, 0, 0, 0, 0]])
    assert codec.to_preprocessing()["max_length"] == 5


@pytest.mark.parametrize(("texts", "match"), [
    ([""], "empty"), (["   "], "empty"), ([42], "string"), (["x" * 11], "limit"),
])
def test_bad_texts_are_invalid_input(texts: list[object], match: str) -> None:
    codec = TextCodec(Tokenizer.from_keras_json(keras_json()), max_chars=10)
    with pytest.raises(InvalidInput, match=match):
        codec.encode(texts)  # type: ignore[arg-type]
