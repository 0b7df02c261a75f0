"""ONNX Runtime's own answer for a model in the repository (the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ort_outputs(repository: Path, model: str, feeds: dict[str, np.ndarray]) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(repository / model / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
