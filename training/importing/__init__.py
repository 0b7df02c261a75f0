"""``modelserve import``: bring a model the project did not train into the repository.

A TensorFlow SavedModel (any serving signature) or a Keras ``.keras``/``.h5`` file is
converted with tf2onnx and checked against TensorFlow on generated inputs; an ONNX
file is checked by running it. Either way the result is a new version of a generic
tensor model (no task) whose manifest holds the signature's own names.

Modules: ``sources`` (what a path is), ``samples`` (generated inputs), ``onnx_graph``
(renaming, unsupported ops; onnx only), ``tensorflow_source`` and ``onnx_source``
(one per kind of source), ``parity`` (output comparison), ``importer`` (staging,
manifest, publishing) and ``cli``. TensorFlow is imported by ``tensorflow_source`` only.
"""

from __future__ import annotations

from training.errors import TrainingError


class ImportFailed(TrainingError):
    """The source cannot be imported; the message names what (an op, a signature, a dtype)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A library's message cut to one line: the CLI answers with a single line."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]
