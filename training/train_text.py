"""Train the text model: the seed's embedding-average network, trained with a
validation split taken from the training part, early stopping that restores the best
weights, a warm-up + cosine learning rate, and dropout on the pooled embedding.

The embedding starts from the data: its first dimensions hold each word's naive-Bayes
log-count ratio on the fitting part (Wang & Manning 2012, the feature behind NBSVM), the
rest Keras' random values. From a random start the network spends its first epochs at
the majority class and then lands anywhere between 0.66 and 0.76 depending on the seed;
from this start it is at about 0.77 after one epoch (measurements in docs/training.md).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from serving.codecs import TextCodec, Tokenizer
from training import baselines, datasets, models
from training.config import PARITY_ITEMS, TrainConfig, TrainResult, hyperparameters
from training.errors import DataError, TrainingError
from training.fitting import fit, score, seed_everything, steps_per_epoch, warmup_cosine

logger = logging.getLogger(__name__)
MONITOR = "val_loss"  # smoother than val_accuracy on ~1,000 validation snippets


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


def naive_bayes_ratios(tokens: np.ndarray, labels: np.ndarray, vocab_size: int,
                       alpha: float = 1.0) -> np.ndarray:
    """Each token id's log(p_w / |p|) - log(q_w / |q|): p counts words in positive texts,
    q in negative ones, both smoothed by ``alpha``; padding (id 0) is no word and gets 0."""
    positive, negative = (np.bincount(tokens[labels == label].ravel(), minlength=vocab_size)
                          [1:vocab_size] + alpha for label in (1, 0))
    ratios = np.zeros(vocab_size)
    ratios[1:] = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    return ratios


def start_embedding_from(model: Any, ratios: np.ndarray, dims: int) -> None:
    """Overwrite the first ``dims`` embedding dimensions with the ratios (several copies,
    so dropout on the pooled vector never removes the signal whole)."""
    if dims <= 0:
        return
    layer = model.get_layer("embedding")
    (weights,) = layer.get_weights()
    weights[:, :dims] = ratios[:, None]
    layer.set_weights([weights])


def early_stopping(config: TrainConfig) -> Any:
    import keras

    return keras.callbacks.EarlyStopping(monitor=MONITOR, patience=config.patience,
                                         restore_best_weights=True)


def best_epoch(curves: dict[str, list[float]]) -> dict[str, Any]:
    """The epoch whose weights were kept (early stopping restores the lowest val_loss)."""
    losses = curves[MONITOR]
    best = min(range(len(losses)), key=losses.__getitem__)
    return {"monitor": MONITOR, "best_epoch": best + 1, "epochs_run": len(losses),
            "val_loss": losses[best], "val_accuracy": curves["val_accuracy"][best]}


def train_text(config: TrainConfig) -> TrainResult:
    data = datasets.rotten_tomatoes_split(config.corpus, config.test_fraction, config.seed)
    train_texts, y_train = datasets.subset(data.x_train, data.y_train, config.train_limit,
                                           config.seed)
    test_texts, y_test = datasets.subset(data.x_test, data.y_test, config.test_limit, config.seed)
    fit_idx, val_idx = validation_split(y_train, config)
    keras_tokenizer, codec = fit_tokenizer(list(train_texts), config)
    check_tokenizer(keras_tokenizer, codec, list(test_texts))
    x_train, x_test = codec.encode(list(train_texts)), codec.encode(list(test_texts))
    epochs, batch_size = config.epochs_for("text"), config.batch_size_for("text")
    seed_everything(config.seed)
    schedule = warmup_cosine(config.learning_rate_for("text"),
                             epochs * steps_per_epoch(len(fit_idx), batch_size))
    model = models.build_text(config.num_words, config.max_length, config.embedding_dim,
                              schedule, dropout=config.dropout)
    start_embedding_from(model, naive_bayes_ratios(x_train[fit_idx], y_train[fit_idx],
                                                   config.num_words),
                         min(config.nb_init_dims, config.embedding_dim))
    curves = fit(model, x_train[fit_idx], y_train[fit_idx], epochs=epochs,
                 batch_size=batch_size, verbose=config.verbose,
                 validation_data=(x_train[val_idx], y_train[val_idx]),
                 callbacks=[early_stopping(config)])
    stopped = best_epoch(curves)
    logger.info("text: kept epoch %d of %d (val_loss %.4f, val_accuracy %.4f)",
                stopped["best_epoch"], stopped["epochs_run"], stopped["val_loss"],
                stopped["val_accuracy"])
    metrics = score(model, x_test, y_test)
    metrics.update(train_items=len(fit_idx), validation_items=len(val_idx))
    metrics["baseline"] = baselines.tfidf_logreg(train_texts, y_train, test_texts, y_test,
                                                 config.seed)
    return TrainResult(
        task="text", model=model, labels=list(datasets.TEXT_LABELS),
        preprocessing=codec.to_preprocessing(),
        postprocessing={"kind": "sigmoid", "output": models.TEXT_OUTPUT}, metrics=metrics,
        dataset={"name": "rotten_tomatoes", "source": data.source, "variant": config.corpus,
                 "test_fraction": config.test_fraction, "seed": config.seed,
                 "test_limit": config.test_limit},
        hyperparameters={**hyperparameters(config, "text", "train_limit", "num_words",
                                           "max_length", "embedding_dim", "oov_token",
                                           "validation_fraction", "patience", "dropout",
                                           "nb_init_dims"),
                         "schedule": "warmup_cosine"},
        parity_inputs=x_test[:PARITY_ITEMS], train_seconds=0.0,
        assets={"tokenizer.json": keras_tokenizer.to_json()},
        history={"epochs": curves, **stopped})


def validation_split(y_train: Any, config: TrainConfig) -> tuple[Any, Any]:
    """Stratified fit/validation indices inside the training part (the test split stays unseen)."""
    if len(y_train) < 10:
        raise DataError(f"{len(y_train)} training texts are too few for a validation split")
    return datasets.stratified_split(y_train, config.validation_fraction, config.seed)
