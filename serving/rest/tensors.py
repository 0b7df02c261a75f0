"""JSON values → numpy arrays of a declared dtype, without per-element Python validation.

Numbers go straight into numpy (serving/codecs/numbers.py for flat lists and rows,
``np.asarray`` on anything else); integer inputs reject fractional or out-of-range
values instead of truncating them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.codecs.numbers import flat_numbers, flatten_rows
from serving.errors import InvalidInput


def to_array(values: Any, dtype: str, name: str) -> np.ndarray:
    target = np.dtype(dtype)
    try:
        if target.kind in "iu":
            return _to_int_array(values, target, name)
        with np.errstate(over="ignore"):  # out-of-range floats become inf: rejected later
            if target.kind == "f" and (fast := _fast_floats(values)) is not None:
                return fast.astype(target)
            return np.asarray(values, dtype=target)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"input {name!r}: values do not form a {dtype} tensor "
                           f"(ragged, or not numbers)", detail=str(exc)) from exc


def _fast_floats(values: Any) -> np.ndarray | None:
    """A flat list of numbers, or a list of equal rows of them (TF Serving's ``instances``,
    v2's flattened ``data``), the fast way; None for anything else."""
    if not isinstance(values, list) or not values:
        return None
    if not isinstance(values[0], list):
        return flat_numbers(values)
    if not values[0] or isinstance(values[0][0], list):
        return None  # empty rows or deeper nesting: the general path
    flat = flatten_rows(values, len(values[0]))
    if flat is None:
        return None
    fast = flat_numbers(flat)
    return None if fast is None else fast.reshape(len(values), -1)


def _to_int_array(values: Any, target: np.dtype, name: str) -> np.ndarray:
    raw = np.asarray(values)
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all() or not np.array_equal(raw, np.round(raw)):
            raise InvalidInput(f"input {name!r} must hold integers ({target}), "
                               f"got fractional or non-finite values")
    elif raw.dtype.kind not in "iub":
        raise InvalidInput(f"input {name!r} must hold integers ({target}), got {raw.dtype}")
    info = np.iinfo(target)
    if raw.size and (raw.min() < info.min or raw.max() > info.max):
        raise InvalidInput(f"input {name!r} has values outside the {target} range")
    return raw.astype(target, copy=False)

