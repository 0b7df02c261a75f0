"""The numpy Tokenizer gives ids identical to Keras' Tokenizer + pad_sequences.

Fitted on the real Rotten Tomatoes training split; checked on the whole test split
and on awkward strings, for several tokenizer settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from serving.codecs import Tokenizer
from serving.codecs.text import pad_sequences
from training import datasets

AWKWARD = [
    "", " ", "\t\n  \r\n", "!!!", "...???!!!", '"#$%&()*+,-./:;<=>?@[\\]^_`{|}~',
    "Amélie était TRÈS bien — vraiment!", "İstanbul ŞEHİR ıi", "STRASSE straße ß",
    "日本語のテキスト 映画", "emoji 🎬🍿 great 👍👍", "don't won't it's", "l'été",
    "tab\tseparated\nnew line", "ﬁne ligature", "Ǆemal", "x" * 5000,
    "the " * 3000 + "end", "good,bad;ugly:movie", "   leading and trailing   ",
    "mixed\u00a0nbsp\u2009thin\u3000ideographic", "zero\u200bwidth", "CAPS LOCK MOVIE",
    "123 4567 1,000,000 3.14", "a--b__c", "\u0000nul\u0007bell",
]


@pytest.fixture(scope="module")
def tf() -> Any:
    """TensorFlow, the reference (imported here, not at collection: it takes seconds)."""
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def corpus() -> Any:
    return datasets.rotten_tomatoes_split("full", 0.2, 42)


@pytest.fixture(scope="module")
def sequences(tf: Any, corpus: Any) -> list[list[int]]:
    keras_tok, _ = fitted(tf, list(corpus.x_train), num_words=10_000)
    return keras_tok.texts_to_sequences(list(corpus.x_test) + AWKWARD)


def fitted(tf: Any, train_texts: list[str], **kwargs: Any) -> tuple[Any, Tokenizer]:
    keras_tok = tf.keras.preprocessing.text.Tokenizer(**kwargs)
    keras_tok.fit_on_texts(train_texts)
    return keras_tok, Tokenizer.from_keras_json(keras_tok.to_json())


@pytest.mark.parametrize("kwargs", [
    {"num_words": 10_000},
    {"num_words": 10_000, "oov_token": "<OOV>"},
    {"num_words": 500, "oov_token": "<OOV>", "lower": False},
    {"num_words": None, "filters": "", "split": ","},
    {"num_words": 60, "char_level": True},
], ids=["default", "oov", "cased-small", "nofilter-comma", "char"])
def test_ids_match_keras(tf: Any, corpus: Any, kwargs: dict[str, Any]) -> None:
    keras_tok, tok = fitted(tf, list(corpus.x_train), **kwargs)
    texts = list(corpus.x_test) + AWKWARD
    assert tok.texts_to_sequences(texts) == keras_tok.texts_to_sequences(texts)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [1, 20, 100])
def test_padding_matches_keras(tf: Any, sequences: list[list[int]], padding: str,
                               truncating: str, maxlen: int) -> None:
    expected = tf.keras.utils.pad_sequences(sequences, maxlen=maxlen, padding=padding,
                                            truncating=truncating)
    got = pad_sequences(sequences, maxlen, padding=padding, truncating=truncating)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_training_check_accepts_the_real_split(corpus: Any) -> None:
    """training.train fits the tokenizer and guards against drift on the test texts."""
    from training.config import TrainConfig
    from training.train import check_tokenizer, fit_tokenizer

    keras_tok, codec = fit_tokenizer(list(corpus.x_train), TrainConfig())
    check_tokenizer(keras_tok, codec, list(corpus.x_test) + AWKWARD)
    assert codec.tokenizer.num_words == 10_000
    assert len(codec.tokenizer.word_index) > 10_000  # full index kept, num_words applied
