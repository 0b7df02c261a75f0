"""Import one source as a new version: convert, check, write the manifest, publish.

The version is assembled in a hidden staging directory beside the versions and renamed
into place only when complete (training/export.py's ``publish``, which also numbers it),
so a server never sees half of it and an existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from serving.models.manifest import (
    DEFAULT_SIGNATURE,
    MODEL_FILE,
    NAME_PATTERN,
    Manifest,
    TensorSpec,
    sha256_file,
)
from training.importing import ImportFailed, onnx_source, parity, samples, sources

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17  # tf2onnx 1.17 converts opsets 15-18 reliably
OPSETS = range(15, 19)


@dataclass(frozen=True)
class ImportOptions:
    repository: Path
    name: str | None = None
    signature: str | None = None
    opset: int = DEFAULT_OPSET
    tolerance: float = parity.DEFAULT_TOLERANCE
    dynamic_size: int = samples.DEFAULT_SIZE
    int_range: tuple[int, int] = samples.DEFAULT_INT_RANGE


@dataclass
class Converted:
    """What a source gives the manifest besides name, version and sha256."""

    signature_name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    warmup_shapes: dict[str, list[int]]
    provenance: dict[str, Any] = field(default_factory=dict)


def import_model(path: Path, options: ImportOptions) -> Path:
    """Import ``path``; returns the new version directory. Raises ImportFailed."""
    start = time.perf_counter()
    source = sources.detect(path)
    name = options.name or sources.default_name(source)
    if not re.fullmatch(NAME_PATTERN, name):
        raise ImportFailed(f"model name {name!r} must match {NAME_PATTERN}")
    model_dir = options.repository / name
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        converted = (_from_onnx(source, staging, options) if source.format == "onnx"
                     else _from_tensorflow(source, staging, options))
        manifest = _manifest(name, staging / MODEL_FILE, converted, source, start)
        from training.export import publish

        target = publish(staging, model_dir, manifest)
    except BaseException:
        if created:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(model_dir)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("imported %s as %s version %s in %.1f s", path, name, target.name,
             time.perf_counter() - start)
    return target


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another writer): leave it
        folder.rmdir()


def _manifest(name: str, onnx_path: Path, converted: Converted, source: sources.Source,
              start: float) -> Manifest:
    provenance = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "source": {"format": source.format, "file": source.path.resolve().name,
                             "signature": converted.signature_name},
                  **converted.provenance,
                  "import_seconds": round(time.perf_counter() - start, 1)}
    return Manifest(name=name, version=1, signature_name=converted.signature_name,
                    sha256=sha256_file(onnx_path), inputs=converted.inputs,
                    outputs=converted.outputs, warmup_shapes=converted.warmup_shapes,
                    provenance=provenance)


def _from_tensorflow(source: sources.Source, staging: Path,
                     options: ImportOptions) -> Converted:
    from serving.models.served_model import check_signature
    from training.importing import tensorflow_source

    if options.opset not in OPSETS:
        raise ImportFailed(f"--opset {options.opset}: tf2onnx converts opsets "
                           f"{OPSETS.start}-{OPSETS.stop - 1}")
    with tensorflow_source.open_signature(source, options.signature) as signature:
        model_proto = tensorflow_source.convert(signature, options.opset, source.path)
        onnx_path = staging / MODEL_FILE
        onnx_path.write_bytes(model_proto.SerializeToString())
        session, _, ort_outputs = onnx_source.open_session(onnx_path)
        from_graph = {spec.name: spec for spec in ort_outputs}
        # An output TensorFlow gives no rank for takes the converted graph's shape.
        outputs = [from_graph.get(spec.name, spec) if spec.name in signature.unknown_rank
                   else spec for spec in signature.outputs]
        draft = Manifest(name="draft", version=1, sha256="0" * 64, inputs=signature.inputs,
                         outputs=outputs)
        try:
            check_signature(draft, session)
        except ValueError as exc:
            raise ImportFailed(f"the converted graph does not match signature "
                               f"{signature.name!r}: {exc}") from exc
        figures = _parity(signature.inputs, draft.batched, options,
                          lambda feeds: tensorflow_source.run(signature, feeds),
                          lambda feeds: onnx_source.run(session, feeds))
        frameworks = {**tensorflow_source.versions(), **_runtime_versions()}
    return Converted(signature.name, signature.inputs, outputs,
                     samples.warmup_shapes(signature.inputs, options.dynamic_size,
                                           draft.batched),
                     {"frameworks": frameworks, "opset": options.opset, "parity": figures})


def _parity(inputs: list[TensorSpec], batched: bool, options: ImportOptions,
            reference: Any, onnx_runtime: Any) -> dict[str, Any]:
    per_run, described = [], []
    for run in samples.runs(options.dynamic_size):
        feeds = samples.sample_inputs(inputs, run, batched, options.int_range)
        per_run.append(parity.compare(reference(feeds), onnx_runtime(feeds), options.tolerance))
        described.append({"batch": run.batch if batched else None, "dynamic_size": run.size})
    return parity.summary(per_run, options.tolerance, described)


def _from_onnx(source: sources.Source, staging: Path, options: ImportOptions) -> Converted:
    """An ONNX file is served as it is: checked, and run on generated inputs."""
    from training.importing import onnx_graph

    model_proto = onnx_source.load(source.path)
    onnx_path = staging / MODEL_FILE
    onnx_source.write(source.path, model_proto, onnx_path)
    session, inputs, outputs = onnx_source.open_session(onnx_path)
    batched = all(spec.batched for spec in [*inputs, *outputs])
    runs = []
    for run in samples.runs(options.dynamic_size):
        feeds = samples.sample_inputs(inputs, run, batched, options.int_range)
        results = onnx_source.run(session, feeds)
        runs.append({"batch": run.batch if batched else None, "dynamic_size": run.size,
                     "output_shapes": {k: list(np.shape(v)) for k, v in results.items()}})
    check = {"reference": None, "runs": runs,
             "note": "an ONNX source is served as it is: checked by the onnx checker and "
                     "run on generated inputs"}
    return Converted(options.signature or DEFAULT_SIGNATURE, inputs, outputs,
                     samples.warmup_shapes(inputs, options.dynamic_size, batched),
                     {"frameworks": _runtime_versions(),
                      "opset": onnx_graph.default_opset(model_proto), "parity": check})


def _runtime_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("onnx", "onnxruntime", "onnxruntime-gpu", "numpy"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found
