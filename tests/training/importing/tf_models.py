"""Models the project did not train, built with TensorFlow for `modelserve import`.

Each builder writes its source (a SavedModel directory or a Keras file) and returns a
``Case``: how to import it, inputs of sizes the import's own checks did not use, and
TensorFlow's outputs for them (the reference every protocol must match).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Case:
    name: str
    source: Path
    inputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]  # by output name ("_only" until the import names it)
    signature: str = "serving_default"
    import_args: list[str] = field(default_factory=list)


def _outputs(result: Any) -> dict[str, np.ndarray]:
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    return {"_only": np.asarray(result)}


def _saved_model_reference(path: Path, signature: str,
                           inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    function = tf.saved_model.load(str(path)).signatures[signature]
    return _outputs({k: v.numpy() for k, v in
                     function(**{k: tf.constant(v) for k, v in inputs.items()}).items()})


def two_inputs_two_outputs(root: Path) -> Case:
    """A functional Keras model: features float32 [N, 4] and category int32 [N, 1] in,
    probabilities [N, 3] (softmax) and value [N, 1] out."""
    import keras

    keras.utils.set_random_seed(1)
    features = keras.Input((4,), name="features")
    category = keras.Input((1,), dtype="int32", name="category")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 3)(category))
    hidden = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()([features, embedded]))
    model = keras.Model({"features": features, "category": category},
                        {"probabilities": keras.layers.Dense(3, activation="softmax")(hidden),
                         "value": keras.layers.Dense(1)(hidden)})
    path = root / "two_in_two_out"
    model.export(str(path), verbose=False)
    rng = np.random.default_rng(2)
    inputs = {"features": rng.standard_normal((5, 4)).astype(np.float32),
              "category": rng.integers(0, 10, (5, 1)).astype(np.int32)}
    return Case("two_in_two_out", path, inputs,
                _saved_model_reference(path, "serving_default", inputs))


def token_classifier(root: Path) -> Case:
    """int64 token ids [N, T] with a dynamic sequence length -> probabilities [N, 3]."""
    import keras

    keras.utils.set_random_seed(3)
    tokens = keras.Input((None,), dtype="int64", name="token_ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(40, 8)(tokens))
    model = keras.Model(tokens, {"probabilities": keras.layers.Dense(
        3, activation="softmax")(pooled)})
    path = root / "tokens"
    model.export(str(path), verbose=False)
    inputs = {"token_ids": np.random.default_rng(4).integers(0, 10, (2, 7)).astype(np.int64)}
    return Case("tokens", path, inputs, _saved_model_reference(path, "serving_default", inputs))


def conv_any_size(root: Path) -> Case:
    """A convolutional model with dynamic height and width (a valid 3x3 convolution:
    inputs smaller than 3x3 fail, so warm-up must use the import's sample size)."""
    import keras

    keras.utils.set_random_seed(5)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)
    model = keras.Model(image, {"logits": keras.layers.Dense(2)(
        keras.layers.GlobalMaxPooling2D()(x))})
    path = root / "conv"
    model.export(str(path), verbose=False)
    inputs = {"image": np.random.default_rng(6).random((2, 11, 9, 3)).astype(np.float32)}
    return Case("conv", path, inputs, _saved_model_reference(path, "serving_default", inputs))


def non_default_signature(root: Path) -> Case:
    """A tf.Module saved with one signature, "predict": float32 and bool inputs, a float
    and an int64 output."""
    import tensorflow as tf

    class Masked(tf.Module):
        def __init__(self) -> None:
            self.scale = tf.Variable([1.5, -2.0, 0.5])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                      tf.TensorSpec([None, 3], tf.bool, name="mask")])
        def predict(self, x: Any, mask: Any) -> dict[str, Any]:
            kept = tf.where(mask, x * self.scale, tf.zeros_like(x))
            return {"masked_sum": tf.reduce_sum(kept, axis=1, keepdims=True),
                    "count": tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)}

    module = Masked()
    path = root / "masked"
    tf.saved_model.save(module, str(path), signatures={"predict": module.predict})
    rng = np.random.default_rng(7)
    inputs = {"x": rng.standard_normal((4, 3)).astype(np.float32),
              "mask": rng.random((4, 3)) < 0.5}
    return Case("masked", path, inputs, _saved_model_reference(path, "predict", inputs),
                signature="predict", import_args=["--signature", "predict"])


def keras_file(root: Path, suffix: str) -> Case:
    """A functional model saved as a Keras file (.keras, or the legacy .h5)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(8)
    x = keras.Input((5,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, activation="tanh")(
        keras.layers.Dense(6, activation="relu")(x)))
    path = root / f"dense{suffix.replace('.', '_')}{suffix}"
    model.save(path)
    inputs = {"x": np.random.default_rng(9).standard_normal((3, 5)).astype(np.float32)}
    return Case(path.stem, path, inputs, _outputs(model(tf.constant(inputs["x"])).numpy()))


BUILDERS: list[Callable[[Path], Case]] = [
    two_inputs_two_outputs, token_classifier, conv_any_size, non_default_signature,
    lambda root: keras_file(root, ".keras"), lambda root: keras_file(root, ".h5")]


def unsupported_op(root: Path) -> Path:
    """Igamma has no ONNX conversion in tf2onnx."""
    import tensorflow as tf

    class Gamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0)}

    module = Gamma()
    path = root / "igamma"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def string_op(root: Path) -> Path:
    """A string input measured in the graph (StringLength: no ONNX conversion; the
    StringLower before it converts)."""
    import tensorflow as tf

    class Lower(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: Any) -> dict[str, Any]:
            return {"length": tf.strings.length(tf.strings.lower(text))}

    module = Lower()
    path = root / "lower"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def small_vocabulary(root: Path) -> Path:
    """Token ids index a 5-word embedding: ids drawn from [0, 10) fail in TensorFlow."""
    import keras

    tokens = keras.Input((None,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5, 2)(tokens))
    path = root / "small_vocab"
    keras.Model(tokens, keras.layers.Dense(1)(pooled)).export(str(path), verbose=False)
    return path
