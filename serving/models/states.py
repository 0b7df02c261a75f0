"""A served model version's lifecycle state: one enum, compared by identity everywhere.

The names are TensorFlow Serving's (``ModelVersionStatus.State``) with FAILED added for a
version that could not be loaded (TF Serving reports such a version as END with an
error; serving/models/status_reports.py says how each protocol reports a state). The enum is a
``str`` so JSON, logs and metrics labels show the plain name. No heavy imports: protocol
modules may use it without importing ONNX Runtime.
"""

from __future__ import annotations

from enum import Enum


class ModelState(str, Enum):
    LOADING = "LOADING"  # opening, checking and warming; not serving yet
    AVAILABLE = "AVAILABLE"  # serving requests
    UNLOADING = "UNLOADING"  # draining its queue; takes no new requests
    END = "END"  # unloaded (or replaced by a reload)
    FAILED = "FAILED"  # could not be loaded; ServedModel.error says why

    def __str__(self) -> str:  # the plain name in messages (an f-string calls this)
        return self.value
