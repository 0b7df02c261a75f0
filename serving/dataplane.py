"""The one place REST and gRPC both call: model lookup, validation, inference, tasks.

Protocol modules only convert payloads to numpy and map errors; everything a
protocol would otherwise duplicate (tensor validation, deadlines, decoding encoded
items by the model's task plug-in, task postprocessing, request metrics, model status,
readiness and draining) lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from serving import stages as request_stages
from serving.admission import (
    Admission,
    WireTensor,
    as_text,
    check_items,
    validate_inputs,
    validate_tensor,
)
from serving.capture import CaptureLog
from serving.config import Settings
from serving.decoding import Decoder
from serving.errors import InvalidInput, ModelNotFound, ModelNotReady, ServingError, ShuttingDown
from serving.models import status_reports
from serving.models.manifest import Manifest
from serving.models.states import ModelState
from serving.models.status_reports import IndexEntry
from serving.routing import Router
from serving.tasks import Prediction, TaskResult
from serving.tracing import Tracing

if TYPE_CHECKING:
    from serving.metrics import Metrics
    from serving.models.registry import ModelRegistry, ServedModel

logger = logging.getLogger(__name__)
__all__ = ["DataPlane", "InferResult", "Prediction", "TaskResult", "WireTensor",
           "validate_inputs", "validate_tensor"]
EXTENSIONS = ["model_repository", "binary_tensor_data"]
RETIRED_RETRIES = 3  # successive retired versions a request follows before failing
UNKNOWN_MODEL = "_unknown"  # the metrics label for requests naming no known model
Inputs = Mapping[str, "np.ndarray | WireTensor"]
# Turns one wire item (a base64 string, say) into the task's item; called after the count.
Unwrap = Callable[[Any, int], Any]


@dataclass(frozen=True)
class InferResult:
    model_name: str
    model_version: int
    outputs: dict[str, np.ndarray]


def _version_string() -> str:
    try:
        return importlib_metadata.version("modelserve")
    except importlib_metadata.PackageNotFoundError:
        return "0"


# The inputs of whichever version runs them (a reload may hand a request to a successor).
Feeds = Callable[["ServedModel"], Awaitable[dict[str, np.ndarray]]]


def _same_signature(a: ServedModel, b: ServedModel) -> bool:
    return (a.manifest.task, a.manifest.inputs, a.manifest.outputs) == \
        (b.manifest.task, b.manifest.inputs, b.manifest.outputs)


class DataPlane:
    def __init__(self, registry: ModelRegistry, settings: Settings,
                 metrics: Metrics | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        # Load/unload and repository polling (serving/models/watcher.py), shared by REST and
        # gRPC; the registry's own, since an engine front end forwards them to its engines.
        self.repository = registry.control()
        # Version labels, traffic split and shadow traffic (serving/routing.py).
        self.routing = Router(registry, self.repository.labels, metrics)
        # What a request may cost (admission.py) and where its items decode (decoding.py).
        self.admission = Admission(max(settings.max_request_bytes,
                                       settings.grpc_max_message_bytes))
        self.decoder = Decoder(settings)
        # Observability (docs/observability.md): spans per request when an OTLP endpoint is
        # set, and the sampled request capture when a capture file is.
        self.tracing = Tracing.from_settings(settings)
        self.capture = CaptureLog.from_settings(settings, metrics)
        self.draining = False
        self._drain_callbacks: list[Callable[[], Any]] = []

    # Health ---------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Loaded, not draining, and (strict_readiness) able to answer for every model the
        server is configured to serve: REST /v2/health/ready, gRPC ServerReady and health."""
        if not self.registry.ready or self.draining:
            return False
        return not self.settings.strict_readiness or not self.unavailable_models()

    def unavailable_models(self) -> list[str]:
        """Configured models with no available version (loading, failed, unloaded)."""
        return self.registry.unavailable()

    def close(self) -> None:
        """Stop the decoding threads, write the capture's queued records and export the
        buffered spans (at shutdown, once requests are done)."""
        self.decoder.close()
        if self.capture is not None:
            self.capture.close()
        self.tracing.shutdown()

    def on_draining(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` once when draining starts (e.g. gRPC health → NOT_SERVING)."""
        self._drain_callbacks.append(callback)

    def start_draining(self) -> None:
        """Readiness goes false at once; requests are still served until the server stops."""
        if self.draining:
            return
        self.draining = True
        for callback in self._drain_callbacks:
            try:
                callback()
            except Exception:  # one broken hook must not stop the shutdown
                logger.exception("draining callback failed")

    def model_ready(self, name: str, version: int | None = None) -> bool:
        try:
            return self.registry.get(name, version).state is ModelState.AVAILABLE
        except ServingError:
            return False

    # Metadata -------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelserve", "version": _version_string(), "extensions": EXTENSIONS}

    def model(self, name: str, version: int | None = None) -> ServedModel:
        return self.registry.get(name, version)

    def model_statuses(self, name: str, version: int | None = None) -> list[ServedModel]:
        found = [m for m in self.registry.models()
                 if m.name == name and (version is None or m.version == version)]
        if not found:
            what = name if version is None else f"{name} version {version}"
            raise ModelNotFound(f"model {what} not found")
        return sorted(found, key=lambda m: m.version)

    def available_versions(self, name: str) -> list[int]:
        """The versions of ``name`` that serve requests (NOT_FOUND for an unknown model)."""
        return status_reports.available_versions(self.model_statuses(name))

    def repository_index(self, *, ready_only: bool = False) -> list[IndexEntry]:
        """Every known model version and whether it is ready (v2 REST and gRPC)."""
        return status_reports.repository_index(self.registry.models(), ready_only=ready_only)

    # Inference ------------------------------------------------------------
    def route(self, name: str, version: int | None = None, *, label: str | None = None,
              key: str | None = None) -> int | None:
        """The version a request goes to: as named, by label, or by the traffic split
        (sticky per ``key``); None: the latest. Protocols call it before ``model``."""
        return self.routing.resolve(name, version, label, key)

    def label_version(self, name: str, label: str) -> int | None:
        """A label's version (None: ``latest``), for status and metadata: not counted."""
        return self.repository.labels.resolve(name, label)

    def deadline(self, deadline: float | None) -> float:
        if deadline is not None:
            return deadline
        return time.monotonic() + self.settings.request_timeout_s

    async def infer(self, name: str, version: int | None, inputs: Inputs, *,
                    protocol: str, deadline: float | None,
                    output_names: list[str] | None = None) -> InferResult:
        """Tensors in (arrays, or WireTensors built once admitted), tensors out (TF Serving
        and Open Inference Protocol). String tensors for a task model are its items."""
        start = time.perf_counter()
        model_name, model_version = name, version
        try:
            version = self.routing.resolve(name, version)  # the split, if not routed yet
            served = self.registry.get(name, version)
            model_version = served.version
            wanted = self._output_names(served.manifest, output_names)
            until = self.deadline(deadline)
            feeds = self._tensor_feeds(inputs, until)
            del inputs  # the feeds hold them now, and let each payload go once it is built
            served, outputs = await self._infer_current(served, version, feeds, until)
            result = InferResult(served.name, served.version,
                                 {k: outputs[k] for k in wanted})
            if self.capture is not None:
                _keep("outputs", result.outputs)
        except BaseException as exc:
            self._record(model_name, model_version, protocol, exc, start)
            raise
        self._record(model_name, model_version, protocol, None, start)
        return result

    def _tensor_feeds(self, inputs: Inputs, deadline: float) -> Feeds:
        tensors = {name: t if isinstance(t, WireTensor) else WireTensor.of(name, t)
                   for name, t in inputs.items()}

        async def feeds(served: ServedModel) -> dict[str, np.ndarray]:
            self.admission.check(served, tensors)  # before anything is built
            arrays = {}
            for name, tensor in list(tensors.items()):
                array = tensor.build()
                # The wire payload (a parsed JSON tree, say) is not needed again: a
                # successor version, if any, gets the built array.
                tensors[name] = WireTensor.of(name, array)
                if tensor.encoded and served.manifest.input_spec(name).dtype == "object":
                    array = as_text(name, array)  # a string tensor the model itself takes
                elif tensor.encoded:
                    array = await self._decode_strings(served, array, deadline)
                arrays[name] = array
            validate_inputs(served.manifest, arrays)
            return arrays
        return feeds

    async def _decode_strings(self, served: ServedModel, array: np.ndarray,
                              deadline: float) -> np.ndarray:
        """A string tensor's elements as the model's task items, decoded by its task."""
        task = served.task
        assert task is not None  # admission refused strings for a model without a task
        items = [task.tensor_item(value, i) for i, value in enumerate(array.reshape(-1))]
        return await task.decode(served.codec, items, self.decoder, deadline)

    @staticmethod
    def _output_names(manifest: Manifest, names: list[str] | None) -> list[str]:
        known = [spec.name for spec in manifest.outputs]
        if not names:
            return known
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput(f"model {manifest.name} has no output {unknown}; "
                               f"outputs are {known}")
        return list(dict.fromkeys(names))

    async def predict(self, task: str, items: Sequence[Any], *, unwrap: Unwrap | None = None,
                      model: str | None = None, version: int | None = None,
                      top_k: int | None = None, protocol: str,
                      deadline: float | None = None, label: str | None = None,
                      routing_key: str | None = None) -> TaskResult:
        """Items of ``task`` → predictions, by ``model`` or the task's default model
        (``label`` and ``routing_key``: see ``route``).

        Items are counted against the model's batch limit, then unwrapped (``unwrap``:
        the protocol's wire form, base64 say, as the task reads it), then decoded by the
        model's task."""
        start = time.perf_counter()
        name, model_version = model or task, version
        try:
            served = self.task_model(task, model, version if label is None else None)
            routed = self.routing.resolve(served.name, version, label, routing_key)
            if routed is not None and routed != served.version:
                served, version = self.task_model(task, served.name, routed), routed
            name, model_version = served.name, served.version
            if not items:
                raise InvalidInput(f"no {task} given")
            if top_k is not None and top_k < 1:
                raise InvalidInput("top_k must be at least 1")
            check_items(served, len(items))
            if unwrap is not None:
                items = [unwrap(item, i) for i, item in enumerate(items)]
            until = self.deadline(deadline)
            served, outputs = await self._infer_current(served, version,
                                                        self._item_feeds(items, until), until)
            assert served.task is not None  # task_model() found a model of the task
            result = TaskResult(served.name, served.version,
                                served.task.predictions(served.manifest, outputs, top_k))
            if self.capture is not None:
                _keep("outputs", result.predictions)
        except BaseException as exc:
            self._record(name, model_version, protocol, exc, start)
            raise
        self._record(name, model_version, protocol, None, start)
        return result

    def _item_feeds(self, items: Sequence[Any], deadline: float) -> Feeds:
        async def feeds(served: ServedModel) -> dict[str, np.ndarray]:
            check_items(served, len(items))
            assert served.task is not None  # task_model() found a model of the task
            array = await served.task.decode(served.codec, items, self.decoder, deadline)
            return {served.manifest.inputs[0].name: array}
        return feeds

    async def _infer_current(self, served: ServedModel, version: int | None, feeds: Feeds,
                             deadline: float) -> tuple[ServedModel, dict[str, np.ndarray]]:
        """Infer on ``served``; if a reload retired it between lookup and queueing (its
        successor is already AVAILABLE), again on the successor, with its own feeds. Reloads
        can follow each other quickly, so a few successors in a row are tried."""
        for _ in range(RETIRED_RETRIES):
            try:
                arrays = await feeds(served)
                if self.capture is not None and self.capture.keeps_inputs:
                    _keep("inputs", arrays)
                start = time.perf_counter()
                outputs = await served.infer(arrays, deadline=deadline)
                # Shadow traffic, if configured: in the background, never the caller's wait;
                # none once draining (the batchers close soon).
                if not self.draining:
                    self.routing.mirror(served, feeds, outputs, time.perf_counter() - start)
                return served, outputs
            except (ModelNotReady, ShuttingDown):
                try:
                    current = self.registry.get(served.name, version)
                except ServingError:
                    current = None
                if current is None or current is served or not _same_signature(current, served):
                    raise
                served = current
        return served, await served.infer(await feeds(served), deadline=deadline)

    def task_model(self, task: str, model: str | None, version: int | None) -> ServedModel:
        """The named model (checked to serve ``task``), or the default one for the task."""
        if model is None and self.registry.knows(task):  # the usual case: named as its task
            try:
                served = self.registry.get(task, version)
            except ServingError:
                pass  # the general path below finds another model or says why not
            else:
                if served.manifest.task == task:
                    return served
        if model is None:
            names = [m.name for m in self.registry.models() if m.manifest.task == task]
            if not names:
                raise ModelNotFound(f"no model serves the {task} task")
            model = task if task in names else sorted(names)[0]
        served = self.registry.get(model, version)
        if served.manifest.task != task:
            raise InvalidInput(f"model {model} serves the {served.manifest.task} task, "
                               f"not {task}")
        return served

    def _record(self, name: str, version: int | None, protocol: str,
                exc: BaseException | None, start: float) -> None:
        """The request's outcome: its metrics, its stage record (for Server-Timing and
        the trace), its rejection reason if refused for capacity, and the capture."""
        if exc is None:
            status = "OK"
        elif isinstance(exc, ServingError):
            status = exc.grpc_code
        elif isinstance(exc, asyncio.CancelledError):
            status = "CANCELLED"
        else:
            status = "INTERNAL"
        if isinstance(exc, ModelNotFound):
            name, version = UNKNOWN_MODEL, None  # clients' names must not mint new series
        version_label = "" if version is None else str(version)
        latency_s = time.perf_counter() - start
        stages = request_stages.current.get()
        label = ""
        if stages is not None:
            stages.model, stages.version, stages.status = name, version_label, status
            label = stages.label
        if self.metrics is not None:
            self.metrics.observe_request(name, version_label, protocol, status, latency_s)
            reason = getattr(exc, "rejection", None)
            if reason is not None:
                self.metrics.observe_rejection(name, version_label, label, reason)
        if self.capture is not None:
            self.capture.offer(stages, name, version_label, protocol, status, latency_s)


def _keep(what: str, value: Any) -> None:
    """Note the request's inputs or outputs on its stage record, for the capture."""
    stages = request_stages.current.get()
    if stages is not None:
        setattr(stages, what, value)
