"""Generated inputs that respect a signature's dtypes and shapes (numpy only).

The parity check runs twice: a batch of 2 with every other dynamic dimension at
``size``, then a batch of 1 at ``size + size // 2``, so a graph whose batch or
sequence/image size was frozen by the conversion fails the check instead of
passing on the one shape it was traced with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.models.manifest import TensorSpec

DEFAULT_SIZE = 16
DEFAULT_INT_RANGE = (0, 10)


@dataclass(frozen=True)
class SampleRun:
    batch: int
    size: int  # every dynamic dimension besides the batch

    def shape(self, spec: TensorSpec, batched: bool) -> list[int]:
        return [self.batch if i == 0 and batched else (self.size if d == -1 else d)
                for i, d in enumerate(spec.shape)]


def runs(size: int = DEFAULT_SIZE) -> list[SampleRun]:
    return [SampleRun(batch=2, size=size), SampleRun(batch=1, size=size + size // 2)]


def sample_inputs(specs: list[TensorSpec], run: SampleRun, batched: bool,
                  int_range: tuple[int, int] = DEFAULT_INT_RANGE,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random values of each input's dtype: floats ~ N(0, 1), integers in ``int_range``
    (token ids, indices), booleans, and decimal numbers as text for string inputs."""
    rng = np.random.default_rng(seed)
    low, high = int_range
    feeds = {}
    for spec in specs:
        shape = run.shape(spec, batched)
        kind = np.dtype(spec.dtype).kind
        if kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif kind in "iu":
            info = np.iinfo(spec.dtype)
            lo, hi = max(low, int(info.min)), min(high, int(info.max) + 1)
            feeds[spec.name] = rng.integers(lo, hi, shape).astype(spec.dtype)
        elif kind == "b":
            feeds[spec.name] = rng.random(shape) < 0.5
        else:  # string tensors: digits parse as numbers and hash as well as words
            values = rng.integers(low, high, shape).astype(str).astype(object)
            feeds[spec.name] = values
    return feeds


def warmup_shapes(specs: list[TensorSpec], size: int, batched: bool) -> dict[str, list[int]]:
    """The first run's shapes for inputs with dynamic dims besides the batch (batch -1)."""
    shapes = {}
    for spec in specs:
        dynamic = [i for i, d in enumerate(spec.shape) if d == -1 and not (i == 0 and batched)]
        if dynamic:
            shapes[spec.name] = [d if d != -1 or (i == 0 and batched) else size
                                 for i, d in enumerate(spec.shape)]
    return shapes
