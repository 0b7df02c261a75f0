"""The model repository contract between training and serving.

Layout: ``<repository>/<name>/<version>/{model.onnx, manifest.json, <assets>}``.
A version directory is considered only once ``manifest.json`` exists, and training
writes a version into a temporary directory and renames it into place, so a
half-copied version is never seen.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
Task = Literal["digit", "text", "image"]
DType = Literal["float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


class TensorSpec(BaseModel):
    """One model input or output; -1 marks a dynamic dimension (the batch)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: DType
    shape: list[int]

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: list[int]) -> list[int]:
        if not shape or any(d == 0 or d < -1 for d in shape):
            raise ValueError(f"shape must be non-empty with dims > 0 or -1, got {shape}")
        return shape


class Postprocessing(BaseModel):
    """How to read the output as class probabilities.

    softmax: the output already holds one probability per label.
    sigmoid: a single probability of ``labels[1]``; ``labels[0]`` gets 1 - p.
    """

    kind: Literal["softmax", "sigmoid"]
    output: str


class BatchingConfig(BaseModel):
    """Per-model overrides of the global batching settings."""

    max_batch_size: int | None = Field(default=None, ge=1)
    max_queue_delay_ms: float | None = Field(default=None, ge=0)
    max_queue_size: int | None = Field(default=None, ge=1)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: int = Field(ge=1)
    task: Task
    model_file: str = MODEL_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    # What the task codec needs; keys per task are documented in serving/codecs/.
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    postprocessing: Postprocessing
    labels: list[str] = Field(min_length=1)
    metrics: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)

    def output_spec(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(version_dir: Path) -> Manifest:
    """Parse and validate ``manifest.json``; raises ValueError with the reason."""
    path = version_dir / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:  # the reason without the path: reasons reach API clients
        raise ValueError(f"cannot read {MANIFEST_FILE}: {exc.strerror or 'unreadable'}") \
            from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{MANIFEST_FILE} is not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno})") from exc
    manifest = Manifest.model_validate(data)
    if str(manifest.version) != version_dir.name:
        raise ValueError(f"{MANIFEST_FILE}: version {manifest.version} does not match "
                         f"directory {version_dir.name}")
    return manifest


def write_manifest(version_dir: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False)
    (version_dir / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def list_versions(model_dir: Path) -> list[int]:
    """Complete versions of one model, ascending (directories with a manifest only)."""
    versions = []
    for child in model_dir.iterdir() if model_dir.is_dir() else []:
        # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
        numbered = child.name.isascii() and child.name.isdigit() and int(child.name) > 0
        if numbered and child.is_dir() and (child / MANIFEST_FILE).is_file():
            versions.append(int(child.name))
    return sorted(versions)


def list_models(repository: Path) -> list[str]:
    """Model names in a repository (directories not starting with '.' or '_')."""
    if not repository.is_dir():
        return []
    return sorted(
        p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
