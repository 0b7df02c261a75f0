"""The seed's three architectures, one builder per task.

Each model starts with ``keras.Input(name=...)`` and names its output layer, so the
exported ONNX tensors carry the names of the serving contract (pixels/probabilities,
tokens/probability, image/probability).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

DIGIT_INPUT, DIGIT_OUTPUT = "pixels", "probabilities"
TEXT_INPUT, TEXT_OUTPUT = "tokens", "probability"
IMAGE_INPUT, IMAGE_OUTPUT = "image", "probability"


def build_digit(learning_rate: Any = 1e-3, label_smoothing: float = 0.0) -> Any:
    """Dense(128, relu) on 784 pixels → Dense(10, softmax).

    With label smoothing the labels must be one-hot (Keras' sparse loss has no smoothing).
    """
    import keras

    pixels = keras.Input(shape=(784,), name=DIGIT_INPUT)
    hidden = keras.layers.Dense(128, activation="relu", name="hidden")(pixels)
    out = keras.layers.Dense(10, activation="softmax", name=DIGIT_OUTPUT)(hidden)
    model = keras.Model(pixels, out, name="digit")
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            if label_smoothing else "sparse_categorical_crossentropy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                  metrics=["accuracy"])
    return model


def build_text(vocab_size: int = 10_000, max_length: int = 100, embedding_dim: int = 16,
               learning_rate: Any = 1e-3, dropout: float = 0.0) -> Any:
    """Embedding → GlobalAveragePooling1D → [Dropout] → Dense(24, relu) → Dense(1, sigmoid).

    Dropout on the pooled embedding only acts in training; the exported graph is the seed's.
    """
    import keras

    tokens = keras.Input(shape=(max_length,), dtype="int32", name=TEXT_INPUT)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="pool_dropout")(x)
    x = keras.layers.Dense(24, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name=TEXT_OUTPUT)(x)
    model = keras.Model(tokens, out, name="text")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def build_image(size: int = 150, weights: str | None = None, train_base: bool = False,
                learning_rate: Any = 1e-3, bn_momentum: float | None = None) -> Any:
    """MobileNetV2 (no top) → GlobalAveragePooling2D → Dense(1024) → Dense(512) → Dense(1).

    learning_rate: a float or a Keras schedule (Adam's rate).
    weights: "imagenet", a local weights file, or None (random). The seed freezes a
    pretrained base; with random weights the base must be trained (``train_base``).
    bn_momentum: a faster BatchNorm momentum for a base trained from scratch on few
    steps (MobileNetV2's 0.999 would leave the inference statistics near their init).
    """
    import keras

    image = keras.Input(shape=(size, size, 3), name=IMAGE_INPUT)
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                          weights=weights)
    base.trainable = train_base
    if bn_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    x = base(image, training=None if train_base else False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(1024, activation="relu", name="hidden1")(x)
    x = keras.layers.Dense(512, activation="relu", name="hidden2")(x)
    # float32 output even under a mixed-precision policy (a bfloat16 sigmoid rounds to 1/256)
    out = keras.layers.Dense(1, activation="sigmoid", name=IMAGE_OUTPUT, dtype="float32")(x)
    model = keras.Model(image, out, name="image")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def augmentation(seed: int, shear: float = 0.2, zoom: float = 0.2) -> Any:
    """The seed's ImageDataGenerator augmentation as Keras preprocessing layers.

    Applied in the tf.data pipeline, never inside the exported model; rescaling is the
    codec's job (scale 1/255), so it is not repeated here.
    """
    import keras

    layers = [keras.layers.RandomFlip("horizontal", seed=seed),
              keras.layers.RandomZoom(zoom, fill_mode="nearest", seed=seed + 1)]
    if hasattr(keras.layers, "RandomShear"):
        layers.append(keras.layers.RandomShear(x_factor=shear, y_factor=shear,
                                               fill_mode="nearest", seed=seed + 2))
    else:  # older Keras: no shear layer; flip and zoom still apply
        logger.warning("keras.layers.RandomShear is missing; training without shear")
    return keras.Sequential(layers, name="augmentation")
