"""SavedModel and Keras sources: their signature, tf2onnx conversion, TensorFlow's outputs.

The only module of ``modelserve import`` that imports TensorFlow (inside functions,
so that importing the package stays cheap). A Keras file is exported to a temporary
SavedModel first: tf2onnx's ``from_keras`` fails under Keras 3, and the SavedModel's
serving signature is what TF Serving would serve from it anyway.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.models.manifest import DEFAULT_SIGNATURE, DType, TensorSpec
from training.importing import ImportFailed, first_line, onnx_graph
from training.importing.sources import Source

log = logging.getLogger(__name__)
# Placeholder names inside the traced function; the ONNX graph gets the signature's own.
_IN, _OUT = "modelserve_in_", "modelserve_out_"
_DTYPES: dict[str, DType] = {
    "float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8",
    "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool",
    "string": "object"}


@dataclass
class Signature:
    """One serving signature: its function and tensors, in the SavedModel's names."""

    name: str
    function: Any  # a ConcreteFunction taking the inputs as keyword arguments
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    tf_inputs: list[Any]  # tf.TensorSpec per input, in ``inputs`` order
    # Outputs whose rank TensorFlow does not know: their shape is taken from the ONNX graph.
    unknown_rank: set[str]


@contextlib.contextmanager
def open_signature(source: Source, wanted: str | None) -> Iterator[Signature]:
    """Load the SavedModel (or the Keras file, exported to one) and pick a signature."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="modelserve-import-") as tmp:
        path = source.path
        if source.format == "keras":
            path = _export_keras(source.path, Path(tmp) / "saved_model")
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # TensorFlow raises many types for unreadable models
            raise ImportFailed(f"TensorFlow cannot load {source.path}: {first_line(exc)}") \
                from exc
        yield _signature(loaded, wanted, source.path)


def _export_keras(path: Path, target: Path) -> Path:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
        model.export(str(target), format="tf_saved_model", verbose=False)
    except Exception as exc:  # custom layers without their code, unbuilt models, ...
        raise ImportFailed(f"Keras cannot load and export {path}: {first_line(exc)}") from exc
    return target


def _signature(loaded: Any, wanted: str | None, path: Path) -> Signature:
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ImportFailed(f"{path} has no serving signature (save it with signatures=...)")
    if wanted is None:
        if DEFAULT_SIGNATURE not in signatures and len(signatures) > 1:
            raise ImportFailed(f"{path} has no {DEFAULT_SIGNATURE!r} signature; choose one "
                               f"with --signature: {', '.join(sorted(signatures))}")
        wanted = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else next(iter(signatures))
    if wanted not in signatures:
        raise ImportFailed(f"signature {wanted!r} not found in {path}; it has "
                           f"{', '.join(sorted(signatures))}")
    function = signatures[wanted]
    args, kwargs = function.structured_input_signature
    if args:
        raise ImportFailed(f"signature {wanted!r} takes positional inputs; a serving "
                           f"signature names each input")
    names = sorted(kwargs)
    inputs = [_spec(name, kwargs[name], "input") for name in names]
    returned = sorted(function.structured_outputs.items())
    outputs = [_spec(name, spec, "output") for name, spec in returned]
    unknown = {name for name, spec in returned if spec.shape.rank is None}
    return Signature(wanted, function, inputs, outputs, [kwargs[n] for n in names], unknown)


def _spec(name: str, spec: Any, kind: str) -> TensorSpec:
    dtype = _DTYPES.get(spec.dtype.name)
    if dtype is None:
        raise ImportFailed(f"{kind} {name!r} is {spec.dtype.name}, which ONNX Runtime "
                           f"serving does not take ({', '.join(sorted(_DTYPES))})")
    if spec.shape.rank is None:
        if kind == "input":
            raise ImportFailed(f"input {name!r} has an unknown rank; the signature must "
                               f"give one")
        return TensorSpec(name=name, dtype=dtype, shape=[])  # filled in from the graph
    shape = [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return TensorSpec(name=name, dtype=dtype, shape=shape)


def convert(signature: Signature, opset: int, source: Path) -> Any:
    """The signature as an ONNX ModelProto whose inputs and outputs bear its names."""
    import tensorflow as tf
    import tf2onnx

    specs = [tf.TensorSpec(spec.shape, spec.dtype, name=f"{_IN}{i}")
             for i, spec in enumerate(signature.tf_inputs)]
    in_names = [spec.name for spec in signature.inputs]
    out_names = [spec.name for spec in signature.outputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        results = signature.function(**dict(zip(in_names, args, strict=True)))
        return {f"{_OUT}{i}": results[name] for i, name in enumerate(out_names)}

    with _quiet("tf2onnx"):
        try:
            model, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
        except Exception as exc:  # tf2onnx raises many types
            raise ImportFailed(f"tf2onnx could not convert {source}: {first_line(exc)}") \
                from exc
    onnx_graph.check_ops(model, str(source))
    mapping = {f"{_IN}{i}": name for i, name in enumerate(in_names)}
    mapping |= {f"{_OUT}{i}": name for i, name in enumerate(out_names)}
    onnx_graph.rename_tensors(model, mapping)
    onnx_graph.name_batch_dims(model)
    return model


def run(signature: Signature, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TensorFlow's own outputs (the reference) for numpy inputs."""
    import tensorflow as tf

    try:
        results = signature.function(**{k: tf.constant(v) for k, v in feeds.items()})
    except Exception as exc:  # e.g. an index past an embedding's vocabulary
        raise ImportFailed(f"TensorFlow failed on the generated inputs ({first_line(exc)}); "
                           f"integer inputs are drawn from --int-range and dynamic dims "
                           f"from --dynamic-size") from exc
    return {name: _numpy(value) for name, value in results.items()}


def _numpy(value: Any) -> np.ndarray:
    array = np.asarray(value.numpy())
    if array.dtype.kind == "O":  # tf.string gives bytes; ONNX Runtime gives str
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array)
    return array


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf
    import tf2onnx

    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "tf2onnx": tf2onnx.__version__}


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """tf2onnx logs each unconvertible op as an error; the one-line failure says it."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    if not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
