"""The one ONNX Runtime call the bare limits and the naive app make per request.

Shared by ``baseline_app`` (plain FastAPI), ``bare_http`` (bare ASGI / RSGI) and
``bare_grpc`` (bare grpc.aio), so they differ from each other and from modelserve only
in the stack around the model, never in the work done for the answer: numbers in,
one ``session.run``, the digit task endpoint's answer (label, probability, top 5) out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = tuple(str(i) for i in range(10))
TOP = 5


class OrtModel:
    """A session with one input, run once per request (no batching)."""

    def __init__(self, model_path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: batch}))

    def digit_answer(self, pixels: np.ndarray) -> dict[str, Any]:
        """784 numbers (0-1, or 0-255 read as intensities) → the task endpoint's answer."""
        if pixels.max() > 1.0:
            pixels = pixels * np.float32(1.0 / 255.0)
        probabilities = self.run(pixels.reshape(1, -1))[0][0]
        order = np.argsort(probabilities)[::-1][:TOP]
        top = [{"label": LABELS[i], "probability": float(probabilities[i])} for i in order]
        return {"model_name": "digit", "model_version": "1",
                "predictions": [{**top[0], "top": top}]}
