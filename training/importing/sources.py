"""What a path given to ``modelserve import`` is, and the model name it suggests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from serving.models.manifest import NAME_PATTERN
from training.importing import ImportFailed

SourceFormat = Literal["saved_model", "keras", "onnx"]
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class Source:
    path: Path
    format: SourceFormat


def detect(path: Path) -> Source:
    """A SavedModel directory, a Keras file or an ONNX file; ImportFailed for anything else."""
    if path.is_dir():
        if any((path / name).is_file() for name in SAVED_MODEL_FILES):
            return Source(path, "saved_model")
        raise ImportFailed(f"{path} is not a SavedModel directory (no saved_model.pb)"
                           f"{_versions_hint(path)}")
    if not path.is_file():
        raise ImportFailed(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return Source(path, "onnx")
    if suffix in KERAS_SUFFIXES:
        return Source(path, "keras")
    raise ImportFailed(f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; "
                       f"give a SavedModel directory, a .keras/.h5 file or an .onnx file")


def _versions_hint(path: Path) -> str:
    """TF Serving's layout (<base>/<version>/saved_model.pb): say which to import."""
    versions = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()
                       and any((p / n).is_file() for n in SAVED_MODEL_FILES)),
                      key=lambda p: int(p.name))
    if not versions:
        return ""
    return (f"; it holds versions {', '.join(p.name for p in versions)}: import one, "
            f"e.g. {versions[-1]}")


def default_name(source: Source) -> str:
    """The directory or file name (a TF Serving version directory's parent), made valid."""
    path = source.path.resolve()
    stem = path.name if source.format == "saved_model" else path.stem
    if source.format == "saved_model" and stem.isdigit():
        stem = path.parent.name
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("_.-")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ImportFailed(f"cannot make a model name from {source.path}; give --name")
    return name
