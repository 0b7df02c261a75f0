"""The model repository contract between training and serving.

Layout: ``<repository>/<name>/<version>/{model.onnx, manifest.json, <assets>}``.
A version directory is considered once it holds ``manifest.json`` or, with no
manifest, ``model.onnx`` (a bare model, whose signature the server reads from the
graph, as Triton auto-completes a configuration). Training and ``modelserve import``
write a version into a temporary directory and rename it into place, so a
half-copied version is never seen.

A manifest's ``task`` names a registered task plug-in (serving/tasks/), which says what
else the manifest needs (the seed tasks: labels and postprocessing) when the version
loads. A manifest without a ``task`` describes a generic tensor model, served over the
tensor protocols (TF Serving, Open Inference Protocol) with its own signature.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
# TensorFlow Serving's default signature key; an imported SavedModel keeps its own.
DEFAULT_SIGNATURE = "serving_default"
# A task's name is a path segment of its REST route, /v1/{task}:predict.
TASK_NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
# numpy dtype names; "object" is a string tensor (ONNX tensor(string), TF DT_STRING,
# v2 BYTES), whose elements ONNX Runtime takes as text.
DType = Literal["float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8",
                "uint16", "uint32", "uint64", "bool", "object"]


class TensorSpec(BaseModel):
    """One model input or output; -1 marks a dynamic dimension (the batch, when first)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: DType
    shape: list[int]

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: list[int]) -> list[int]:
        # An empty shape is a scalar (a generic model's; it has no batch dimension).
        if any(d == 0 or d < -1 for d in shape):
            raise ValueError(f"shape must have dims > 0 or -1, got {shape}")
        return shape

    @property
    def batched(self) -> bool:
        """Whether the first dimension is dynamic, i.e. can be the batch."""
        return bool(self.shape) and self.shape[0] == -1


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


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    # A registered task's name (serving/tasks/), checked when the version loads; None: a
    # generic tensor model (no codec, no labels), served over the tensor protocols.
    task: str | None = Field(default=None, pattern=TASK_NAME_PATTERN)
    # The name clients give as TF Serving's signature_name (the SavedModel's own).
    signature_name: str = Field(default=DEFAULT_SIGNATURE, min_length=1)
    model_file: str = MODEL_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    # Shapes the warm-up runs use for inputs with dynamic dims besides the batch
    # (the batch stays -1); a dynamic dim not given here is warmed at size 1.
    warmup_shapes: dict[str, list[int]] = Field(default_factory=dict)
    # What the task codec needs; keys per task are documented in serving/codecs/.
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    postprocessing: Postprocessing | None = None
    labels: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)

    @model_validator(mode="after")
    def _warmup_shapes_fit(self) -> Manifest:
        specs = {spec.name: spec.shape for spec in self.inputs}
        for name, shape in self.warmup_shapes.items():
            declared = specs.get(name)
            if declared is None or not _fits(declared, shape):
                raise ValueError(f"warmup_shapes[{name!r}] = {shape} does not fit an input "
                                 f"(inputs: {specs})")
        return self

    @property
    def batched(self) -> bool:
        """Requests can be merged along a first, dynamic dimension of every tensor."""
        return all(spec.batched for spec in [*self.inputs, *self.outputs])

    def input_spec(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _fits(declared: list[int], shape: list[int]) -> bool:
    """A warm-up shape: the declared one with its dynamic dims given (the batch may stay -1)."""
    return len(declared) == len(shape) and all(
        (s == -1 and d == -1 and i == 0) or (s >= 1 and d in (-1, s))
        for i, (d, s) in enumerate(zip(declared, shape, strict=True)))


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


def has_manifest(version_dir: Path) -> bool:
    return (version_dir / MANIFEST_FILE).is_file()


def list_versions(model_dir: Path) -> list[int]:
    """Complete versions of one model, ascending: directories with a manifest, or with a
    bare model.onnx and no manifest."""
    versions = []
    for child in model_dir.iterdir() if model_dir.is_dir() else []:
        # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
        numbered = child.name.isascii() and child.name.isdigit() and int(child.name) > 0
        if numbered and child.is_dir() and (has_manifest(child)
                                            or (child / MODEL_FILE).is_file()):
            versions.append(int(child.name))
    return sorted(versions)


def list_models(repository: Path) -> list[str]:
    """Model names in a repository (directories not starting with '.' or '_')."""
    if not repository.is_dir():
        return []
    return sorted(
        p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
