"""Mixed precision for the image model where the CPU runs bfloat16 in hardware.

Measured here (AMD EPYC with AVX512-BF16 but no AMX, TensorFlow 2.21): a MobileNetV2
training step at 150x150 costs about 15-20% more CPU time under ``mixed_bfloat16``
than in float32 (oneDNN converts instead of computing natively), so ``auto`` picks
bfloat16 only where the CPU reports AMX-BF16 tiles. The trained model is always handed
on in float32: ONNX Runtime's CPU kernels do not run bfloat16 convolutions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.errors import TrainingError

logger = logging.getLogger(__name__)
POLICIES = ("float32", "mixed_bfloat16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def resolve(choice: str, flags: set[str] | None = None) -> str:
    """auto | float32 | mixed_bfloat16 → the Keras policy name to train under."""
    if choice in POLICIES:
        return choice
    if choice != "auto":
        raise TrainingError(f"unknown precision {choice!r}; choose auto, {', '.join(POLICIES)}")
    return "mixed_bfloat16" if "amx_bf16" in (cpu_flags() if flags is None else flags) \
        else "float32"


@contextmanager
def policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy for the models built inside; restored afterwards."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def as_float32(model: Any, rebuild: Callable[[], Any]) -> Any:
    """The same weights in a float32 model (``rebuild`` builds the architecture afresh)."""
    if model.dtype_policy.name == "float32":
        return model
    fresh = rebuild()
    fresh.set_weights(model.get_weights())
    logger.info("copied the %s-trained weights into a float32 model for export",
                model.dtype_policy.name)
    return fresh
