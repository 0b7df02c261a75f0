"""The seed architectures, the augmentation layers, the schedule and precision helpers,
the image data pipeline, and repeatable training."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from serving.codecs import ImageCodec
from training import fitting, image_data, models, precision
from training.config import TrainConfig
from training.errors import DataError, TrainingError
from training.train_image import shuffled_batches


def layer_kinds(model: object) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]  # type: ignore[attr-defined]


def test_digit_architecture() -> None:
    model = models.build_digit(label_smoothing=0.1)
    assert layer_kinds(model) == ["InputLayer", "Dense", "Dense"]
    assert model.count_params() == 784 * 128 + 128 + 128 * 10 + 10
    assert model.inputs[0].name == "pixels" and model.layers[-1].name == "probabilities"
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.loss.get_config()["label_smoothing"] == 0.1


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_text_architecture(dropout: float) -> None:
    model = models.build_text(dropout=dropout)
    kinds = ["InputLayer", "Embedding", "GlobalAveragePooling1D", "Dense", "Dense"]
    if dropout:
        kinds.insert(3, "Dropout")
    assert layer_kinds(model) == kinds
    assert model.count_params() == 10_000 * 16 + (16 * 24 + 24) + (24 + 1)
    assert model.inputs[0].dtype == "int32" and tuple(model.inputs[0].shape) == (None, 100)
    tokens = np.arange(200, dtype=np.int32).reshape(2, 100)
    # Dropout acts in training only: inference is the seed's network, run twice alike.
    np.testing.assert_array_equal(model(tokens, training=False), model(tokens, training=False))


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


def test_warmup_then_cosine_decay_to_zero() -> None:
    schedule = fitting.warmup_cosine(2e-3, total_steps=200)  # warm-up: 5% = 10 steps
    rates = [float(schedule(step)) for step in (0, 5, 10, 105, 200)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(1e-3)
    assert rates[2] == pytest.approx(2e-3) and rates[3] == pytest.approx(1e-3, rel=0.02)
    assert rates[4] == pytest.approx(0.0, abs=1e-9)
    assert fitting.steps_per_epoch(100, 32) == 4 and fitting.steps_per_epoch(0, 32) == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_a_log_line_per_epoch_elsewhere(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("sys.stdout", Terminal())
    assert fitting.progress("auto") == (1, [])
    assert fitting.progress(0) == (0, []) and fitting.progress("2") == (2, [])
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a log file or a pipe
    level, callbacks = fitting.progress("auto")
    assert level == 0 and len(callbacks) == 1
    model = models.build_digit()
    x, y = np.zeros((8, 784), np.float32), np.arange(8) % 10
    with caplog.at_level("INFO", logger="training.fitting"):
        fitting.fit(model, x, y, epochs=3, batch_size=4, verbose="auto")
    lines = [r.getMessage() for r in caplog.records if r.name == "training.fitting"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("loss" in line and "accuracy" in line and "\r" not in line for line in lines)
    assert sys.stdout.getvalue() == ""  # nothing from Keras itself


def test_precision_follows_the_cpu_and_exports_float32() -> None:
    assert precision.resolve("auto", {"avx512f", "avx512_bf16"}) == "float32"
    assert precision.resolve("auto", {"avx512_bf16", "amx_bf16", "amx_tile"}) == "mixed_bfloat16"
    assert precision.resolve("float32", {"amx_bf16"}) == "float32"
    with pytest.raises(TrainingError, match="unknown precision"):
        precision.resolve("fp8")
    with precision.policy("mixed_bfloat16"):
        trained = models.build_digit()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert trained.layers[1].compute_dtype == "bfloat16"
    exported = precision.as_float32(trained, models.build_digit)
    assert exported is not trained and exported.layers[1].compute_dtype == "float32"
    for a, b in zip(trained.get_weights(), exported.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    same = models.build_digit()
    assert precision.as_float32(same, models.build_digit) is same


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_images_kept_as_8_bit_give_the_codec_floats_exactly() -> None:
    codec = ImageCodec(height=40, width=40)
    rng = np.random.default_rng(3)
    for shape in ((28, 28), (50, 30, 3)):  # grayscale upscaled, colour downscaled
        floats = codec.decode(png_bytes(rng.integers(0, 256, shape, dtype=np.uint8)))
        eight_bit = image_data.to_uint8(floats, codec)
        assert eight_bit.dtype == np.uint8
        np.testing.assert_array_equal(image_data.pixels_from_uint8(eight_bit, codec), floats)
    with pytest.raises(DataError, match="not 8-bit pixels"):
        image_data.to_uint8(np.full((2, 2, 3), 0.5, np.float32), codec)


def test_image_tree_loads_as_8_bit(tmp_path: Path) -> None:
    from tests.training.images import write_tree

    root = write_tree(tmp_path, {"dark": 40, "light": 200})
    codec = ImageCodec(height=20, width=20)
    floats = image_data.load_image_tree(root, codec)
    eight_bit = image_data.load_image_tree(root, codec, as_uint8=True)
    assert eight_bit.x_train.dtype == np.uint8
    np.testing.assert_array_equal(image_data.pixels_from_uint8(eight_bit.x_train, codec),
                                  floats.x_train)


def test_shuffled_batches_cover_every_item_each_epoch_and_repeat() -> None:
    x, y = np.arange(10, dtype=np.uint8)[:, None], np.arange(10) % 2
    stream = shuffled_batches(x, y, 4, seed=5)
    epochs = [[next(stream) for _ in range(3)] for _ in range(2)]
    for batches in epochs:
        assert [len(b[1]) for b in batches] == [4, 4, 2]
        assert sorted(np.concatenate([b[0][:, 0] for b in batches])) == list(range(10))
    again = shuffled_batches(x, y, 4, seed=5)
    for batch in epochs[0]:
        np.testing.assert_array_equal(next(again)[0], batch[0])
    assert epochs[0][0][1].dtype == np.float32


def test_fixed_seed_gives_repeatable_training() -> None:
    from training.train import train

    config = TrainConfig(epochs=2, train_limit=2000, test_limit=200, verbose=0)
    first, second = train("text", config), train("text", config)
    np.testing.assert_array_equal(first.model.predict(first.parity_inputs, verbose=0),
                                  second.model.predict(second.parity_inputs, verbose=0))
    assert first.metrics == second.metrics and first.history == second.history
    history = first.history or {}
    assert history["epochs_run"] == len(history["epochs"]["val_loss"]) == 2
    assert history["val_loss"] == min(history["epochs"]["val_loss"])
    assert first.metrics["train_items"] + first.metrics["validation_items"] == 2000


def test_naive_bayes_ratios_and_embedding_start() -> None:
    from training.train_text import naive_bayes_ratios, start_embedding_from

    # ids: 1 only in positive texts, 2 only in negative ones, 3 in both; 0 is padding.
    tokens = np.array([[1, 3, 0, 0], [1, 1, 0, 0], [2, 3, 0, 0]], dtype=np.int32)
    labels = np.array([1, 1, 0])
    ratios = naive_bayes_ratios(tokens, labels, vocab_size=5)
    positive = np.array([3 + 1, 0 + 1, 1 + 1, 0 + 1], float)  # ids 1-4: counts + 1
    negative = np.array([0 + 1, 1 + 1, 1 + 1, 0 + 1], float)
    expected = np.r_[0.0, np.log(positive / 8) - np.log(negative / 6)]
    np.testing.assert_allclose(ratios, expected)
    assert ratios[1] > 0 > ratios[2]
    model = models.build_text(vocab_size=5, max_length=4, embedding_dim=6)
    before = model.get_layer("embedding").get_weights()[0].copy()
    start_embedding_from(model, ratios, dims=4)
    after = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_allclose(after[:, :4], np.repeat(ratios[:, None], 4, axis=1), rtol=1e-6)
    np.testing.assert_array_equal(after[:, 4:], before[:, 4:])


def test_batchnorm_statistics_become_the_mean_over_batches() -> None:
    import tensorflow as tf

    from training.train_image import batchnorm_layers, recalibrate_batchnorm

    inner = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.9)])
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1)])
    (bn,) = batchnorm_layers(model, keras.layers.BatchNormalization)  # found inside `inner`
    batches = [np.random.default_rng(i).normal(i, 1 + i, (8, 3)).astype(np.float32)
               for i in range(5)]
    dataset = tf.data.Dataset.from_tensor_slices((np.stack(batches), np.zeros((5, 8))))
    assert recalibrate_batchnorm(model, dataset, count=4) == 32
    np.testing.assert_allclose(bn.moving_mean.numpy(),
                               np.mean([b.mean(axis=0) for b in batches[:4]], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([b.var(axis=0) for b in batches[:4]], axis=0), rtol=1e-5)
    assert bn.momentum == 0.9
    np.testing.assert_array_equal(model.layers[-1].get_weights()[1], [0.0])  # no training
