"""Train the three seed models on real data; each trainer returns a TrainResult.

All preprocessing goes through serving/codecs, so training and serving cannot drift.
Keras' progress output is kept (``verbose``); a fixed seed gives repeatable runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from serving.codecs import DigitCodec, TextCodec, Tokenizer
from training import baselines, datasets, models
from training.config import PARITY_ITEMS, TASKS, TrainConfig, TrainResult, hyperparameters
from training.errors import TrainingError

logger = logging.getLogger(__name__)

def train(task: str, config: TrainConfig) -> TrainResult:
    """Train one task's model and evaluate it (in TensorFlow) on the held-out test split."""
    from training.train_image import train_image

    trainers = {"digit": train_digit, "text": train_text, "image": train_image}
    if task not in trainers:
        raise TrainingError(f"unknown model {task!r}; choose from {', '.join(TASKS)}")
    start = time.perf_counter()
    result = trainers[task](config)
    result.train_seconds = round(time.perf_counter() - start, 1)
    logger.info("%s: trained in %.1f s, test accuracy %s", task, result.train_seconds,
                result.metrics.get("test_accuracy"))
    return result


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds; called after data loading so bad data fails before TF loads."""
    import keras

    keras.utils.set_random_seed(seed)


def fit_and_score(model: Any, train_data: Any, y_train: Any, x_test: np.ndarray,
                   y_test: np.ndarray, config: TrainConfig, task: str) -> dict[str, Any]:
    # A tf.data pipeline (y_train None) is batched and shuffled already.
    extra = {"shuffle": False} if y_train is None else {"batch_size": config.batch_size}
    model.fit(train_data, y_train, epochs=config.epochs_for(task), verbose=config.verbose,
              **extra)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=64, verbose=0)
    return {"test_accuracy": round(float(accuracy), 4), "test_loss": round(float(loss), 4),
            "test_items": len(y_test)}


def train_digit(config: TrainConfig) -> TrainResult:
    codec = DigitCodec()
    data = datasets.load_mnist()
    x_train, y_train = datasets.subset(data.x_train, data.y_train, config.train_limit, config.seed)
    x_test, y_test = datasets.subset(data.x_test, data.y_test, config.test_limit, config.seed)
    x_train, x_test = codec.from_uint8(x_train), codec.from_uint8(x_test)
    seed_everything(config.seed)
    model = models.build_digit()
    metrics = fit_and_score(model, x_train, y_train, x_test, y_test, config, "digit")
    metrics["train_items"] = len(y_train)
    return TrainResult(
        task="digit", model=model, labels=[str(d) for d in range(10)],
        preprocessing=codec.to_preprocessing(),
        postprocessing={"kind": "softmax", "output": models.DIGIT_OUTPUT}, metrics=metrics,
        dataset={"name": "mnist", "source": data.source, "split": "test",
                 "test_limit": config.test_limit, "seed": config.seed},
        hyperparameters=hyperparameters(config, "digit", "batch_size", "train_limit"),
        parity_inputs=x_test[:PARITY_ITEMS], train_seconds=0.0)


def fit_tokenizer(texts: list[str], config: TrainConfig) -> tuple[Any, TextCodec]:
    """Fit Keras' Tokenizer, then build the numpy codec serving uses from its JSON."""
    import tensorflow as tf

    keras_tokenizer = tf.keras.preprocessing.text.Tokenizer(num_words=config.num_words,
                                                            oov_token=config.oov_token)
    keras_tokenizer.fit_on_texts(texts)
    tokenizer = Tokenizer.from_keras_json(keras_tokenizer.to_json())
    return keras_tokenizer, TextCodec(tokenizer=tokenizer, max_length=config.max_length)


def check_tokenizer(keras_tokenizer: Any, codec: TextCodec, texts: list[str]) -> None:
    """Guard against drift: the numpy tokenizer must give Keras' ids on these texts."""
    expected = keras_tokenizer.texts_to_sequences(texts)
    got = codec.tokenizer.texts_to_sequences(texts)
    bad = [i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b]
    if bad:
        raise TrainingError(f"numpy tokenizer differs from Keras on {len(bad)} texts, "
                            f"first: {texts[bad[0]]!r}")


def train_text(config: TrainConfig) -> TrainResult:
    data = datasets.rotten_tomatoes_split(config.corpus, config.test_fraction, config.seed)
    train_texts, y_train = datasets.subset(data.x_train, data.y_train, config.train_limit,
                                           config.seed)
    test_texts, y_test = datasets.subset(data.x_test, data.y_test, config.test_limit, config.seed)
    keras_tokenizer, codec = fit_tokenizer(list(train_texts), config)
    check_tokenizer(keras_tokenizer, codec, list(test_texts))
    x_train, x_test = codec.encode(list(train_texts)), codec.encode(list(test_texts))
    seed_everything(config.seed)
    model = models.build_text(config.num_words, config.max_length, config.embedding_dim)
    metrics = fit_and_score(model, x_train, y_train, x_test, y_test, config, "text")
    metrics["train_items"] = len(y_train)
    metrics["baseline"] = baselines.tfidf_logreg(train_texts, y_train, test_texts, y_test,
                                                 config.seed)
    return TrainResult(
        task="text", model=model, labels=list(datasets.TEXT_LABELS),
        preprocessing=codec.to_preprocessing(),
        postprocessing={"kind": "sigmoid", "output": models.TEXT_OUTPUT}, metrics=metrics,
        dataset={"name": "rotten_tomatoes", "source": data.source, "variant": config.corpus,
                 "test_fraction": config.test_fraction, "seed": config.seed,
                 "test_limit": config.test_limit},
        hyperparameters=hyperparameters(config, "text", "batch_size", "train_limit", "num_words",
                               "max_length", "embedding_dim", "oov_token"),
        parity_inputs=x_test[:PARITY_ITEMS], train_seconds=0.0,
        assets={"tokenizer.json": keras_tokenizer.to_json()})
