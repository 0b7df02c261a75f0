"""Reference outputs vs ONNX Runtime's, output by output, on generated inputs.

Floating outputs may differ by ``tolerance`` relative to their scale: the check is
max |reference - ONNX Runtime| <= tolerance * max(1, max |reference|), so a
probability is held to 1e-4 and a regression output of 5000 to 0.5. Integer,
boolean and string outputs must be equal. A failure names the output.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from training.importing import ImportFailed

log = logging.getLogger(__name__)
DEFAULT_TOLERANCE = 1e-4


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray],
            tolerance: float) -> dict[str, dict[str, float]]:
    """Per output: max absolute and relative difference; raises past the tolerance."""
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ImportFailed(f"parity check: ONNX Runtime gives no output {missing}")
    report = {}
    for name, want in expected.items():
        have = np.asarray(got[name])
        want = np.asarray(want)
        if want.shape != have.shape:
            raise ImportFailed(f"parity check failed: output {name!r} has shape "
                               f"{list(have.shape)} in ONNX Runtime, {list(want.shape)} in "
                               f"the reference")
        report[name] = _difference(name, want, have, tolerance)
    return report


def _difference(name: str, want: np.ndarray, have: np.ndarray,
                tolerance: float) -> dict[str, float]:
    if want.dtype.kind != "f":
        unequal = int(np.count_nonzero(want != have))
        if unequal:
            raise ImportFailed(f"parity check failed: output {name!r} differs in {unequal} of "
                               f"{want.size} elements (integer, boolean and string outputs "
                               f"must be equal)")
        return {"max_abs_diff": 0.0, "relative": 0.0}
    want64, have64 = want.astype(np.float64), have.astype(np.float64)
    if not np.array_equal(np.isfinite(want64), np.isfinite(have64)):
        raise ImportFailed(f"parity check failed: output {name!r} is NaN or infinite in one "
                           f"framework and not the other")
    finite = np.isfinite(want64)
    diff = float(np.max(np.abs(want64 - have64)[finite])) if finite.any() else 0.0
    scale = max(1.0, float(np.max(np.abs(want64[finite]))) if finite.any() else 1.0)
    relative = diff / scale
    if relative > tolerance:
        raise ImportFailed(f"parity check failed: output {name!r} differs by {diff:.3g} "
                           f"(relative {relative:.3g}) > tolerance {tolerance:g}")
    return {"max_abs_diff": diff, "relative": relative}


def summary(per_run: list[dict[str, dict[str, float]]], tolerance: float,
            runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's parity figure: the worst difference of each output over the runs."""
    outputs: dict[str, float] = {}
    worst_relative = 0.0
    for report in per_run:
        for name, figures in report.items():
            outputs[name] = max(outputs.get(name, 0.0), figures["max_abs_diff"])
            worst_relative = max(worst_relative, figures["relative"])
    result = {"max_abs_diff": max(outputs.values(), default=0.0),
              "max_relative_diff": worst_relative, "tolerance": tolerance,
              "outputs": outputs, "runs": runs, "inputs": "generated"}
    log.info("parity: max |reference - ONNX Runtime| = %.3g (relative %.3g, tolerance %g)",
             result["max_abs_diff"], worst_relative, tolerance)
    return result
