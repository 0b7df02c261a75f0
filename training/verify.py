"""TensorFlow vs ONNX Runtime parity: the export fails if outputs differ by more than 1e-4."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from training.convert import convert_saved_model
from training.errors import ExportError

logger = logging.getLogger(__name__)
DEFAULT_TOLERANCE = 1e-4


def tf_outputs(saved_model_dir: Path, inputs: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    return np.asarray(loaded.serve(tf.constant(inputs)))


def ort_outputs(onnx_path: Path, input_name: str, output_name: str,
                inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run([output_name], {input_name: inputs})[0]


def check_parity(saved_model_dir: Path, onnx_path: Path, spec: dict[str, Any],
                 output_name: str, inputs: np.ndarray,
                 tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Run both on the same held-out inputs; raise ExportError past the tolerance."""
    inputs = inputs.astype(spec["dtype"])
    expected = tf_outputs(saved_model_dir, inputs)
    got = ort_outputs(onnx_path, spec["name"], output_name, inputs)
    if expected.shape != got.shape:
        raise ExportError(f"parity: TF output shape {expected.shape} != ONNX {got.shape}")
    diff = float(np.max(np.abs(expected.astype(np.float64) - got))) if got.size else 0.0
    logger.info("parity %s: max |TF - ORT| = %.3g over %d items", onnx_path.name, diff,
                len(inputs))
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(f"parity check failed: max |TF - ONNX Runtime| = {diff:.3g} > "
                          f"{tolerance:g} on {len(inputs)} held-out inputs")
    spread = float(np.ptp(got)) if got.size else 0.0
    return {"max_abs_diff": diff, "tolerance": tolerance, "items": len(inputs),
            "output_spread": round(spread, 6)}


def randomize_weights(model: Any, seed: int = 0) -> None:
    """Re-initialise every weight so activations stay alive through the whole network.

    Keras' own initialisers leave the deep MobileNetV2 base near-constant (BatchNorm
    statistics at 0/1, biases 0), which would make the check trivial; He-scaled kernels
    and spread BatchNorm parameters give outputs that differ from input to input.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape, name = tuple(weight.shape), weight.path.split("/")[-1]
        if name in {"gamma", "moving_variance"}:
            value = rng.uniform(0.5, 1.5, shape)
        elif name in {"beta", "moving_mean", "bias"}:
            value = rng.normal(0.0, 0.1, shape)
        else:  # kernels: fan-in is every dim but the last (depthwise: the spatial dims)
            fan_in = int(np.prod(shape[:2] if len(shape) == 4 and shape[-1] == 1
                                 else shape[:-1])) or 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        weight.assign(value.astype(weight.dtype))


def random_weights_parity(keras_path: Path, spec: dict[str, Any], output_name: str,
                          inputs: np.ndarray, opset: int,
                          tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Parity of the same architecture with re-initialised random weights.

    A trained model (above all one on a frozen random base) may give near-constant
    outputs, so parity on it alone proves little; random weights exercise every layer.
    """
    import keras

    model = keras.models.load_model(keras_path, compile=False)
    randomize_weights(model)
    with tempfile.TemporaryDirectory(prefix="modelserve-parity-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), verbose=False)
        onnx_path = Path(tmp) / "random.onnx"
        convert_saved_model(saved, spec, output_name, onnx_path, opset)
        result = check_parity(saved, onnx_path, spec, output_name, inputs, tolerance)
    if result["output_spread"] < 1e-3:
        logger.warning("random-weights outputs barely vary (spread %.3g): parity proves little",
                       result["output_spread"])
    return result
