"""Train the image model (MobileNetV2 + dense head) from a class-per-folder tree.

Images are decoded by the serving ImageCodec (same resize and 1/255 scale as serving);
the seed's augmentation runs as Keras preprocessing layers in the tf.data pipeline,
so the exported model holds no augmentation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from serving.codecs import ImageCodec
from training import baselines, image_data, models
from training.config import PARITY_ITEMS, TrainConfig, TrainResult, hyperparameters
from training.errors import DataError, TrainingError
from training.train import fit_and_score, seed_everything

logger = logging.getLogger(__name__)
DEFAULT_TRAIN_LIMIT = 1200
DEFAULT_TEST_LIMIT = 1000


def resolve_image_dir(config: TrainConfig) -> Path:
    """The user's folder, or the offline default (Fashion-MNIST classes written as PNGs)."""
    if config.image_data_dir is not None:
        return Path(config.image_data_dir)
    return image_data.write_fashion_mnist_tree(image_data.default_image_dir())


def build_image_model(config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """The image model with the requested weights; "auto" tries imagenet, then none."""
    choice = config.weights
    if choice not in {"auto", "imagenet", "none"} and not Path(choice).is_file():
        raise DataError(f"weights must be auto, imagenet, none or an existing file: {choice}")
    candidates: dict[str, list[str | None]] = {"auto": ["imagenet", None],
                                               "imagenet": ["imagenet"], "none": [None]}
    for weights in candidates.get(choice, [str(Path(choice).resolve())]):
        train_base = config.train_base if config.train_base is not None else weights is None
        try:
            model = models.build_image(config.image_size, weights, train_base,
                                       config.learning_rate,
                                       bn_momentum=0.9 if weights is None and train_base else None)
        except Exception as exc:  # download/IO errors differ by platform
            if choice != "auto":
                raise TrainingError(f"cannot load MobileNetV2 weights {choice!r}: {exc}") from exc
            logger.warning("imagenet weights unavailable (%s); training the whole network from "
                           "random weights", str(exc).splitlines()[0][:200])
            continue
        source = "none" if weights is None else ("imagenet" if weights == "imagenet"
                                                 else f"file:{Path(weights).name}")
        return model, {"requested": choice, "source": source, "base_trainable": train_base}
    raise TrainingError("no usable MobileNetV2 weights")  # unreachable: None always builds


def augmented_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig) -> Any:
    """Shuffled, batched, augmented tf.data pipeline over the decoded arrays."""
    import tensorflow as tf

    augment = models.augmentation(config.seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32)))
    ds = ds.shuffle(len(y), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    ds = ds.map(lambda images, labels: (augment(images, training=True), labels),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_image(config: TrainConfig) -> TrainResult:
    codec = ImageCodec(height=config.image_size, width=config.image_size)
    data_dir = resolve_image_dir(config)
    train_limit = config.train_limit if config.train_limit is not None else DEFAULT_TRAIN_LIMIT
    test_limit = config.test_limit if config.test_limit is not None else DEFAULT_TEST_LIMIT
    split = image_data.load_image_tree(data_dir, codec, train_limit=train_limit or None,
                                       test_limit=test_limit or None,
                                       test_fraction=config.test_fraction, seed=config.seed)
    seed_everything(config.seed)
    model, weights = build_image_model(config)
    logger.info("image: weights %s, base %s, %d training images x %d epochs", weights["source"],
                "trained" if weights["base_trainable"] else "frozen", len(split.y_train),
                config.epochs_for("image"))
    train_ds = augmented_dataset(split.x_train, split.y_train, config)
    metrics = fit_and_score(model, train_ds, None, split.x_test, split.y_test, config, "image")
    metrics["train_items"] = len(split.y_train)
    metrics["baseline"] = baselines.pixel_logreg(split.x_train, split.y_train, split.x_test,
                                                 split.y_test, config.seed)
    return TrainResult(
        task="image", model=model, labels=split.class_names,
        preprocessing=codec.to_preprocessing(),
        postprocessing={"kind": "sigmoid", "output": models.IMAGE_OUTPUT}, metrics=metrics,
        dataset={"name": "image_folder", "source": split.source, "path": str(data_dir.resolve()),
                 "train_limit": train_limit, "test_limit": test_limit,
                 "test_fraction": config.test_fraction, "seed": config.seed},
        hyperparameters={**hyperparameters(config, "image", "batch_size", "image_size",
                                           "learning_rate"),
                         "train_limit": train_limit, "test_limit": test_limit,
                         "augmentation": {"horizontal_flip": True, "zoom": 0.2, "shear": 0.2}},
        parity_inputs=split.x_test[:PARITY_ITEMS], train_seconds=0.0, weights=weights)
