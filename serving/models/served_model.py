"""One served model version (session, codec, batcher) and how it is opened and checked.

Split from registry.py so the registry module holds only the repository bookkeeping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from serving.batching import Batcher
from serving.config import Settings
from serving.errors import InferenceFailed, ModelNotReady
from serving.models.manifest import (
    MODEL_FILE,
    BatchingConfig,
    Manifest,
    TensorSpec,
    has_manifest,
    read_manifest,
    sha256_file,
)
from serving.models.runtime import OrtModel
from serving.models.states import ModelState
from serving.tasks import Task, task_of

log = logging.getLogger(__name__)

C = TypeVar("C")


@dataclass(frozen=True)
class VersionPolicy:
    """"latest" (newest), "latest:N" (newest N) or "specific:1,3"."""

    latest: int | None = 1
    specific: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        text = text.strip().lower()
        if text in ("", "latest"):
            return cls(latest=1)
        if text == "all":
            return cls(latest=None)
        if m := re.fullmatch(r"latest:(\d+)", text):
            if int(m.group(1)) < 1:
                raise ValueError("version policy latest:N needs N >= 1")
            return cls(latest=int(m.group(1)))
        if m := re.fullmatch(r"specific:(\d+(?:,\d+)*)", text):
            return cls(latest=None, specific=frozenset(int(v) for v in m.group(1).split(",")))
        raise ValueError(f"version policy {text!r}: use latest, latest:N, all or specific:1,3")

    def select(self, versions: list[int]) -> list[int]:
        if self.specific:
            return sorted(v for v in versions if v in self.specific)
        if self.latest is None:
            return sorted(versions)
        return sorted(versions)[-self.latest:]


class InferenceBackend(Protocol):
    """Where a served version's requests run: its own Batcher (per-worker layout) or an
    engine process's, reached over serving/engine (engine layout)."""

    async def submit(self, inputs: dict[str, np.ndarray], *,
                     deadline: float | None = None) -> dict[str, np.ndarray]: ...


@dataclass
class ServedModel:
    name: str
    version: int
    path: Path
    state: ModelState = ModelState.LOADING
    error: str | None = None
    manifest: Manifest = field(default=None)  # type: ignore[assignment]
    model: OrtModel | None = None
    task: Task | None = None  # the manifest's task plug-in; None: a generic tensor model
    codec: Any = None  # the task's codec, built from the manifest's preprocessing
    batcher: Batcher | None = None
    backend: InferenceBackend | None = None  # the batcher, or the engine that holds it
    remote_providers: list[str] = field(default_factory=list)  # an engine's, if remote
    executor: concurrent.futures.ThreadPoolExecutor | None = None
    batching: BatchLimits | None = None
    warmup_timings: dict[int, float] = field(default_factory=dict)
    max_batch_s: float = float("inf")  # a warm run of the largest batch

    @property
    def runs_inline(self) -> bool:
        return self.batcher is not None and self.batcher.inline

    def __post_init__(self) -> None:
        if self.manifest is None:
            self.manifest = placeholder_manifest(self.name, self.version)

    def codec_as(self, kind: type[C]) -> C:
        """The codec, which the manifest's task makes a ``kind`` (built so at load)."""
        if not isinstance(self.codec, kind):
            raise InferenceFailed(f"model {self.name!r} has no {kind.__name__} for its task "
                                  f"{self.manifest.task!r}")
        return self.codec

    @property
    def providers(self) -> list[str]:
        return list(self.model.providers) if self.model is not None else self.remote_providers

    async def infer(self, inputs: dict[str, np.ndarray], *,
                    deadline: float | None = None) -> dict[str, np.ndarray]:
        if self.state is not ModelState.AVAILABLE or self.backend is None:
            raise ModelNotReady(f"version {self.version} of model {self.name!r} is {self.state}")
        return await self.backend.submit(inputs, deadline=deadline)

    def fail(self, reason: str) -> None:
        self.state, self.error = ModelState.FAILED, reason

    async def shutdown(self, drain_timeout_s: float) -> None:
        if self.batcher is not None:
            if drain_timeout_s > 0:
                await self.batcher.drain(drain_timeout_s)
            await self.batcher.close()
        if self.executor is not None:
            await asyncio.to_thread(self.executor.shutdown, wait=True)


def placeholder_manifest(name: str, version: int) -> Manifest:
    """Stands in while loading or when manifest.json is unreadable (task None, no tensors)."""
    return Manifest.model_construct(name=name, version=version, task=None, sha256="",
                                    inputs=[], outputs=[], labels=[], postprocessing=None,
                                    preprocessing={}, metrics={}, provenance={},
                                    batching=BatchingConfig())


@dataclass(frozen=True)
class BatchLimits:
    """The batching settings one model version runs with (every field resolved)."""

    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int


def batching_for(manifest: Manifest, settings: Settings) -> BatchLimits:
    """Per-model batching: config overrides, then the manifest, then global defaults.

    A model without a dynamic first dimension on every tensor cannot be batched: each
    request runs alone (max batch size 1), whatever the settings say.
    """
    merged: dict[str, Any] = {"max_batch_size": settings.max_batch_size,
                              "max_queue_delay_ms": settings.max_queue_delay_ms,
                              "max_queue_size": settings.max_queue_size}
    merged |= manifest.batching.model_dump(exclude_none=True)
    overrides = settings.model_batching.get(manifest.name, {})
    merged |= BatchingConfig.model_validate(overrides).model_dump(exclude_none=True)
    if not manifest.batched:
        merged["max_batch_size"] = 1
    return BatchLimits(int(merged["max_batch_size"]), float(merged["max_queue_delay_ms"]),
                       int(merged["max_queue_size"]))


def warmup_sizes(settings: Settings, max_batch_size: int) -> list[int]:
    """The configured warm-up sizes capped at the model's maximum, plus the maximum."""
    return sorted({min(s, max_batch_size) for s in settings.warmup_batch_sizes if s >= 1}
                  | {max_batch_size})


def open_version(served: ServedModel, settings: Settings) -> None:
    """Blocking (runs in a thread): manifest, checksum, session, signature, codec, warm-up.

    A version with no manifest.json is a bare model.onnx: its manifest is made from the
    session's signature and the sha256 computed here (nothing to check it against).
    """
    manifest = read_manifest(served.path) if has_manifest(served.path) else None
    if manifest is not None and manifest.name != served.name:
        raise ValueError(f"manifest names model {manifest.name!r}, directory says {served.name!r}")
    # First: an unknown task, or a manifest the task cannot serve, fails before any work.
    served.task = None if manifest is None else task_of(manifest)
    model_path = served.path / (manifest.model_file if manifest is not None else MODEL_FILE)
    if not model_path.is_file():
        raise ValueError(f"{model_path.name} is missing")
    digest = sha256_file(model_path)
    if manifest is not None and digest != manifest.sha256:
        raise ValueError(f"sha256 of {model_path.name} is {digest}, manifest says "
                         f"{manifest.sha256}")
    model = OrtModel(model_path, providers=settings.providers,
                     intra_op_threads=settings.intra_op_threads,
                     conv_algo_search=settings.cudnn_conv_algo_search,
                     session_per_bucket=None if settings.cuda_session_per_batch_size else False)
    if manifest is None:
        manifest = bare_manifest(served.name, served.version, model, digest)
        log.warning("model %s version %d has no %s: serving %s with the signature read from "
                    "the graph and sha256 %s computed at load", served.name, served.version,
                    "manifest.json", model_path.name, digest)
    else:
        check_signature(manifest, model)
    served.manifest = manifest
    served.batching = batching_for(manifest, settings)
    served.codec = None if served.task is None else \
        served.task.codec(manifest, served.path, settings)
    model.warmup_shapes = dict(manifest.warmup_shapes)
    model.batched = manifest.batched
    _warm(served, model, settings)
    served.model = model


def bare_manifest(name: str, version: int, model: OrtModel, sha256: str) -> Manifest:
    """A generic model's manifest from the session's signature (raises ValueError)."""
    def specs(found: list[TensorSpec]) -> list[TensorSpec]:
        return [TensorSpec.model_validate(spec.model_dump()) for spec in found]

    return Manifest(name=name, version=version, sha256=sha256, inputs=specs(model.inputs),
                    outputs=specs(model.outputs),
                    provenance={"source": {"format": "onnx", "manifest": "made at load"}})


def _warm(served: ServedModel, model: OrtModel, settings: Settings) -> None:
    """Run every batch size once. Dynamic dims the manifest gives no warm-up size for run
    at 1 and strings are "0", which some graphs refuse (a convolution without padding, a
    lookup): such a model is served unwarmed, with a warning, rather than not at all."""
    assert served.batching is not None
    sizes = warmup_sizes(settings, served.batching.max_batch_size)
    try:
        served.warmup_timings = model.warmup(sizes)
    except Exception as exc:  # onnxruntime raises its own types
        guessed = guessed_warmup(served.manifest)
        if not guessed:
            raise
        log.warning("model %s version %d: warm-up with guessed %s failed (%s); serving "
                    "unwarmed (give warmup_shapes in its manifest)", served.name,
                    served.version, ", ".join(guessed), str(exc).splitlines()[0][:200])
        served.warmup_timings, served.max_batch_s = {}, float("inf")
        return
    served.max_batch_s = _steady_time(model, served.batching.max_batch_size,
                                      served.warmup_timings, settings.inline_batch_max_ms)


def guessed_warmup(manifest: Manifest) -> list[str]:
    """What warm-up inputs guess: dynamic non-batch dims with no warm-up shape (as
    ``name[axis]``) and string values."""
    first = 1 if manifest.batched else 0
    dims = [f"{spec.name}[{axis}]" for spec in manifest.inputs
            if spec.name not in manifest.warmup_shapes
            for axis, dim in enumerate(spec.shape) if dim == -1 and axis >= first]
    return dims + [f"{spec.name} strings" for spec in manifest.inputs if spec.dtype == "object"]


def _steady_time(model: OrtModel, size: int, warmup: dict[int, float], limit_ms: float) -> float:
    """Seconds the largest batch takes once warm (re-timed only when it could be inline)."""
    first = warmup.get(size, float("inf"))
    if first * 1000 > 20 * limit_ms and not model.on_cuda:
        return first  # far too slow to run inline: no need for a second run
    # (On CUDA the first run is mostly cuDNN planning; a second one costs milliseconds.)
    feeds = model.example_feeds(size)
    best = first
    for _ in range(3):
        start = time.perf_counter()
        model.run(feeds)
        best = min(best, time.perf_counter() - start)
    return best


def check_signature(manifest: Manifest, model: OrtModel) -> None:
    """The manifest's tensors must be the session's (names, dtypes, dynamic dims)."""
    problems = _compare("input", manifest.inputs, model.inputs)
    problems += _compare("output", manifest.outputs, model.outputs)
    post = manifest.postprocessing
    if post is not None and post.output not in {s.name for s in model.outputs}:
        problems.append(f"postprocessing output {post.output!r} is not an output of the model")
    if problems:
        raise ValueError("manifest does not match the model: " + "; ".join(problems))


def _compare(kind: str, declared: list[TensorSpec], actual: list[TensorSpec]) -> list[str]:
    found = {s.name: s for s in actual}
    problems = []
    if {s.name for s in declared} != set(found):
        problems.append(f"{kind}s are {sorted(found)}, manifest says "
                        f"{sorted(s.name for s in declared)}")
    for spec in declared:
        real = found.get(spec.name)
        if real is None:
            continue
        if real.dtype != spec.dtype:
            problems.append(f"{kind} {spec.name} is {real.dtype}, manifest says {spec.dtype}")
        if not _shapes_match(spec.shape, real.shape):
            problems.append(f"{kind} {spec.name} has shape {real.shape}, manifest says "
                            f"{spec.shape}")
    return problems


def _shapes_match(declared: list[int], actual: list[int]) -> bool:
    """Same rank; a dim the manifest calls dynamic (-1) must be dynamic in the session."""
    if len(declared) != len(actual):
        return False
    return all(d == a or (a == -1 and d > 0) for d, a in zip(declared, actual, strict=True))

