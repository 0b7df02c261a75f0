"""The seed architectures, the augmentation layers, and repeatable training."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from training import models  # noqa: E402  (after the skip: needs TensorFlow)
from training.config import TrainConfig  # noqa: E402


def layer_kinds(model: object) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]  # type: ignore[attr-defined]


def test_digit_architecture() -> None:
    model = models.build_digit()
    assert layer_kinds(model) == ["InputLayer", "Dense", "Dense"]
    assert model.count_params() == 784 * 128 + 128 + 128 * 10 + 10
    assert model.inputs[0].name == "pixels" and model.layers[-1].name == "probabilities"
    assert model.layers[-1].activation.__name__ == "softmax"


def test_text_architecture() -> None:
    model = models.build_text()
    assert layer_kinds(model) == ["InputLayer", "Embedding", "GlobalAveragePooling1D", "Dense",
                                  "Dense"]
    assert model.count_params() == 10_000 * 16 + (16 * 24 + 24) + (24 + 1)
    assert model.inputs[0].dtype == "int32" and tuple(model.inputs[0].shape) == (None, 100)


@pytest.mark.parametrize(("train_base", "momentum"), [(False, None), (True, 0.9)])
def test_image_architecture(train_base: bool, momentum: float | None) -> None:
    model = models.build_image(150, None, train_base, bn_momentum=momentum)
    assert layer_kinds(model) == ["InputLayer", "Functional", "GlobalAveragePooling2D", "Dense",
                                  "Dense", "Dense"]
    assert [layer.units for layer in model.layers[3:]] == [1024, 512, 1]
    base = model.layers[1]
    assert base.name.startswith("mobilenetv2") and base.trainable == train_base
    assert tuple(model.inputs[0].shape) == (None, 150, 150, 3)
    bn = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {layer.momentum for layer in bn} == {momentum or 0.999}
    assert (len(model.trainable_weights) > 100) == train_base


def test_augmentation_is_random_in_training_only() -> None:
    augment = models.augmentation(seed=1)
    assert layer_kinds(augment) == ["RandomFlip", "RandomZoom", "RandomShear"]
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(augment(images, training=False)), images)
    changed = np.asarray(augment(images, training=True))
    assert changed.shape == images.shape and not np.allclose(changed, images)


def test_fixed_seed_gives_repeatable_training() -> None:
    from training.train import train

    config = TrainConfig(epochs=1, train_limit=2000, test_limit=200, verbose=0)
    first, second = train("text", config), train("text", config)
    np.testing.assert_array_equal(first.model.predict(first.parity_inputs, verbose=0),
                                  second.model.predict(second.parity_inputs, verbose=0))
    assert first.metrics == second.metrics
