"""What both clients share: results, retry policy, and turning user inputs into items.

numpy only: the client package never imports TensorFlow, FastAPI or ONNX Runtime.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clients.errors import ClientError

DEFAULT_TIMEOUT_S = 30.0
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PredictResult:
    model_name: str
    model_version: str
    predictions: list[Prediction]

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_version": self.model_version,
                "predictions": [{"label": p.label, "probability": p.probability,
                                 "top": [{"label": lbl, "probability": pr}
                                         for lbl, pr in p.top]}
                                for p in self.predictions]}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a server's Retry-After wins when given."""

    retries: int = 3
    backoff_s: float = 0.05
    max_backoff_s: float = 2.0

    def delay(self, attempt: int, error: ClientError) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or None to give up."""
        if attempt >= self.retries or not error.retryable:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_S)
        return random.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))


def read_bytes(data: bytes | bytearray | memoryview | str | Path) -> bytes:
    """Encoded file contents: bytes as they are, or a path to read."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return Path(data).read_bytes()


def image_items(images: Any) -> list[bytes]:
    """One image (bytes or path) or a list of them → list of encoded images."""
    if isinstance(images, (bytes, bytearray, memoryview, str, Path)):
        images = [images]
    return [read_bytes(item) for item in images]


def text_items(texts: str | Sequence[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def digit_items(digits: Any) -> list[bytes | np.ndarray]:
    """Digits → items: encoded images (bytes or paths) or rows of 784 floats.

    Accepts one image, one digit of 784 values or 28x28, a batch (n, 784) or
    (n, 28, 28), or a list mixing images and digits.
    """
    if isinstance(digits, (bytes, bytearray, memoryview, str, Path)):
        return [read_bytes(digits)]
    if isinstance(digits, list) and any(isinstance(d, (bytes, str, Path)) for d in digits):
        return [item for d in digits for item in digit_items(d)]
    arr = np.asarray(digits, dtype=np.float32)
    if arr.size % 784 or arr.ndim not in (1, 2, 3):
        raise ValueError(f"digits must be 784 values, 28x28, or a batch of them; "
                         f"got shape {arr.shape}")
    return list(arr.reshape(-1, 784))


def limit_top(top: list[tuple[str, float]], top_k: int | None) -> list[tuple[str, float]]:
    return top if top_k is None else top[:max(1, top_k)]
