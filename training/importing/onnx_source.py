"""ONNX file sources: checked, opened in ONNX Runtime, written as one file. No TensorFlow."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from serving.models.manifest import TensorSpec
from training.importing import ImportFailed, first_line


def load(path: Path) -> Any:
    """The ModelProto, with any external data read, and checked by the onnx checker."""
    try:
        import onnx
    except ModuleNotFoundError as exc:
        raise ImportFailed("importing an ONNX file needs the onnx package "
                           "(pip install onnx)") from exc
    try:
        model = onnx.load(str(path))  # external data files are read from beside it
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, OSError
        raise ImportFailed(f"{path} is not a valid ONNX model: {first_line(exc)}") from exc
    return model


def write(path: Path, model: Any, target: Path) -> None:
    """A self-contained model.onnx: the file itself, or the model with its external data."""
    if any(t.data_location == 1 for t in model.graph.initializer):  # EXTERNAL
        target.write_bytes(model.SerializeToString())
    else:
        shutil.copyfile(path, target)


def open_session(path: Path) -> tuple[Any, list[TensorSpec], list[TensorSpec]]:
    """ONNX Runtime's session and the signature as the server will read it."""
    from serving.models.runtime import OrtModel

    try:
        model = OrtModel(path, providers="cpu")
    except Exception as exc:  # onnxruntime's own errors, or a tensor of an unserved type
        raise ImportFailed(f"ONNX Runtime cannot serve the model: {first_line(exc)}") from exc
    return model, _valid(model.inputs), _valid(model.outputs)


def _valid(specs: list[TensorSpec]) -> list[TensorSpec]:
    return [TensorSpec.model_validate(spec.model_dump()) for spec in specs]


def run(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return dict(zip([s.name for s in model.outputs],
                        model.session.run(None, feeds), strict=True))
    except Exception as exc:  # onnxruntime's own errors
        raise ImportFailed(f"ONNX Runtime failed on the generated inputs ({first_line(exc)}); "
                           f"integer inputs are drawn from --int-range and dynamic dims from "
                           f"--dynamic-size") from exc
