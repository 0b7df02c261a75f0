"""Train the image model (MobileNetV2 + dense head) from a class-per-folder tree.

Images are decoded by the serving ImageCodec (same resize and 1/255 scale as serving)
and held as its 8-bit pixels; the seed's augmentation runs as Keras preprocessing
layers in the tf.data pipeline, so the exported model holds no augmentation.

Without pretrained weights the whole network trains from random weights, the costly
path: the defaults spend the budget on more images and one epoch (every step sees new
images), with a warm-up + cosine learning rate whose decay to zero also lets the
BatchNorm statistics settle on the final weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from serving.codecs import ImageCodec
from training import baselines, image_data, models, precision
from training.config import PARITY_ITEMS, TrainConfig, TrainResult, hyperparameters
from training.errors import DataError, TrainingError
from training.fitting import fit, score, seed_everything, steps_per_epoch, warmup_cosine

logger = logging.getLogger(__name__)
DEFAULT_TRAIN_LIMIT = 9000
DEFAULT_TEST_LIMIT = 1000
RECALIBRATION_BATCHES = 64  # of the training pipeline (16 images each by default)
# Below this many steps at momentum 0.9, 0.9**steps > 1e-6 of the initial moving variance
# is left; longer runs have forgotten it and their statistics already fit the final
# weights (on 9,000 images re-estimating changed 0.976 to 0.973, i.e. nothing but noise).
RECALIBRATE_BELOW_STEPS = 130


def resolve_image_dir(config: TrainConfig) -> Path:
    """The user's folder, or the offline default (Fashion-MNIST classes written as PNGs)."""
    if config.image_data_dir is not None:
        return Path(config.image_data_dir)
    return image_data.write_fashion_mnist_tree(image_data.default_image_dir())


def build_image_model(config: TrainConfig, learning_rate: Any) -> tuple[Any, dict[str, Any]]:
    """The image model with the requested weights; "auto" tries imagenet, then none."""
    choice = config.weights
    if choice not in {"auto", "imagenet", "none"} and not Path(choice).is_file():
        raise DataError(f"weights must be auto, imagenet, none or an existing file: {choice}")
    candidates: dict[str, list[str | None]] = {"auto": ["imagenet", None],
                                               "imagenet": ["imagenet"], "none": [None]}
    for weights in candidates.get(choice, [str(Path(choice).resolve())]):
        train_base = config.train_base if config.train_base is not None else weights is None
        # Each attempt from the same random state: a failed imagenet download must not
        # change the random weights "auto" ends with (they equal "none"'s).
        seed_everything(config.seed)
        try:
            model = models.build_image(config.image_size, weights, train_base, learning_rate,
                                       bn_momentum=scratch_momentum(weights is not None,
                                                                    train_base))
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


def scratch_momentum(pretrained: bool, train_base: bool) -> float | None:
    """BatchNorm momentum 0.9 for a base trained from random weights (MobileNetV2's 0.999
    would leave the statistics near their initial values after a few hundred steps)."""
    return 0.9 if train_base and not pretrained else None


def shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int,
                     seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of 8-bit batches, a fresh seeded permutation each epoch."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = np.sort(order[start:start + batch_size])
            yield x[idx], y[idx].astype(np.float32)


def augmented_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig,
                      codec: ImageCodec) -> Any:
    """Shuffled, batched, augmented tf.data pipeline over the 8-bit images.

    Batches are cut in numpy (no copy of the whole array into a TensorFlow constant);
    the map runs sequentially so the seeded augmentation repeats from run to run, and
    prefetching overlaps it with the training step.
    """
    import tensorflow as tf

    augment = models.augmentation(config.seed)
    batch_size = config.batch_size_for("image")
    ds = tf.data.Dataset.from_generator(
        lambda: shuffled_batches(x, y, batch_size, config.seed),
        output_signature=(tf.TensorSpec((None, *x.shape[1:]), tf.uint8),
                          tf.TensorSpec((None,), tf.float32)))
    scale = np.float32(codec.scale)
    ds = ds.map(lambda images, labels: (augment(tf.cast(images, tf.float32) * scale,
                                                training=True), labels))
    return ds.prefetch(2)


def batchnorm_layers(model: Any, kind: type) -> Iterator[Any]:
    """Every layer of ``kind`` in the model and in the models nested in it (the base)."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, kind):
            yield layer
        else:
            yield from batchnorm_layers(layer, kind)


def recalibrate_batchnorm(model: Any, batches: Any, count: int = RECALIBRATION_BATCHES) -> int:
    """Re-estimate every BatchNorm's moving statistics with the final weights ("precise BN").

    The moving averages start at mean 0, variance 1 and keep momentum**steps of that
    start: after the quick build's 40 steps at momentum 0.9 that is 1.5% of a variance of
    1, which dwarfs the true variance of many layers of a network trained from random
    weights, so inference squashes their activations and the model answered one class
    for everything (0.50 before, 0.90 after). Forward passes in training mode over
    ``count`` batches of the training pipeline (augmented, as the network was trained),
    with no gradient step, replace them by the plain mean over those batches (momentum
    i/(i+1) on the i-th batch). Returns the number of images used.
    """
    import keras

    layers = list(batchnorm_layers(model, keras.layers.BatchNormalization))
    momenta = [layer.momentum for layer in layers]
    images = 0
    try:
        for i, (x, _) in enumerate(batches.take(count)):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(x, training=True)  # eager: the momentum changes every call
            images += len(x)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return images


def train_network(config: TrainConfig, split: image_data.ImageSplit,
                  codec: ImageCodec) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Build and fit the network; returns the float32 model, the weights used, the curves."""
    epochs, batch_size = config.epochs_for("image"), config.batch_size_for("image")
    steps = epochs * steps_per_epoch(len(split.y_train), batch_size)
    seed_everything(config.seed)
    policy = precision.resolve(config.precision)
    with precision.policy(policy):
        model, weights = build_image_model(
            config, warmup_cosine(config.learning_rate_for("image"), steps))
        logger.info("image: weights %s, base %s, %d training images x %d epochs, %s",
                    weights["source"], "trained" if weights["base_trainable"] else "frozen",
                    len(split.y_train), epochs, policy)
        train_ds = augmented_dataset(split.x_train, split.y_train, config, codec)
        curves = fit(model, train_ds, None, epochs=epochs, batch_size=batch_size,
                     verbose=config.verbose, steps_per_epoch=steps // epochs)
    momentum = scratch_momentum(weights["source"] != "none", weights["base_trainable"])
    model = precision.as_float32(model, lambda: models.build_image(
        config.image_size, None, weights["base_trainable"], 1e-3, bn_momentum=momentum))
    # A frozen base runs in inference mode: its statistics are the pretrained ones.
    reestimate = weights["base_trainable"] and steps < RECALIBRATE_BELOW_STEPS
    if reestimate:
        logger.info("image: BatchNorm statistics re-estimated on %d training images after "
                    "%d steps", recalibrate_batchnorm(model, train_ds), steps)
    return model, weights, {"epochs": curves, "steps": steps, "precision": policy,
                            "batchnorm_reestimated": reestimate}


def train_image(config: TrainConfig) -> TrainResult:
    codec = ImageCodec(height=config.image_size, width=config.image_size)
    data_dir = resolve_image_dir(config)
    train_limit = config.train_limit if config.train_limit is not None else DEFAULT_TRAIN_LIMIT
    test_limit = config.test_limit if config.test_limit is not None else DEFAULT_TEST_LIMIT
    split = image_data.load_image_tree(data_dir, codec, train_limit=train_limit or None,
                                       test_limit=test_limit or None,
                                       test_fraction=config.test_fraction, seed=config.seed,
                                       as_uint8=True)
    model, weights, history = train_network(config, split, codec)
    x_test = image_data.pixels_from_uint8(split.x_test, codec)
    metrics = score(model, x_test, split.y_test)
    metrics["train_items"] = len(split.y_train)
    metrics["baseline"] = baselines.pixel_logreg(split.x_train, split.y_train, split.x_test,
                                                 split.y_test, config.seed, scale=codec.scale)
    return TrainResult(
        task="image", model=model, labels=split.class_names,
        preprocessing=codec.to_preprocessing(),
        postprocessing={"kind": "sigmoid", "output": models.IMAGE_OUTPUT}, metrics=metrics,
        dataset={"name": "image_folder", "source": split.source, "path": str(data_dir.resolve()),
                 "train_limit": train_limit, "test_limit": test_limit,
                 "test_fraction": config.test_fraction, "seed": config.seed},
        hyperparameters={**hyperparameters(config, "image", "image_size"),
                         "train_limit": train_limit, "test_limit": test_limit,
                         "schedule": "warmup_cosine", "precision": history["precision"],
                         "augmentation": {"horizontal_flip": True, "zoom": 0.2, "shear": 0.2}},
        parity_inputs=x_test[:PARITY_ITEMS], train_seconds=0.0, weights=weights,
        history=history)
