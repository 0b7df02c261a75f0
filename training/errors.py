"""Training-side failures a user can act on (bad data, a failed parity check).

The CLI turns these into one clear line and a non-zero exit, never a bare traceback.
"""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: the message is meant for the user."""


class DataError(TrainingError):
    """A data set is missing, empty, corrupt, or has the wrong class layout."""


class ExportError(TrainingError):
    """Conversion to ONNX failed or the ONNX model does not match TensorFlow."""
