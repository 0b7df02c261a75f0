"""The model registry: which versions are served, each loaded, checked, warmed and batched.

Per version: the manifest is read, model.onnx's sha256 compared with it, the ONNX
Runtime session opened and its inputs/outputs compared with the manifest, the
task codec built, every batch size the batcher will use run once, and only then
the version becomes AVAILABLE. A version that fails any step is FAILED with the
reason in ``.error`` and logged; the other versions keep serving. Versions load
concurrently in threads. ``load_version``/``unload_version``/``replace_version`` change one
version without disturbing the others: a new version is warm before it becomes
the latest served, and an old one is drained before it is closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from pathlib import Path

from serving.batching import Batcher
from serving.config import Settings
from serving.errors import ModelNotFound, ModelNotReady
from serving.metrics import Metrics
from serving.models import manifest as repo
from serving.models.served_model import ServedModel, VersionPolicy, open_version, warmup_sizes
from serving.models.states import ModelState
from serving.models.watcher import RepositoryControl

__all__ = ["ModelRegistry", "ModelState", "ServedModel", "VersionPolicy", "warmup_sizes"]

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.repository = Path(settings.model_repository)
        self.policy = VersionPolicy.parse(settings.version_policy)
        self._versions: dict[str, dict[int, ServedModel]] = {}
        self._loaded = False
        self._closing = False
        self._retired: set[str] = set()  # left the repository (see unavailable())
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """True once the first load finished (failed versions do not block the others)."""
        return self._loaded and not self._closing

    def chosen_versions(self) -> dict[str, list[int]]:
        """What the version policy selects from the repository now."""
        chosen = {}
        for name in filter(self.places, repo.list_models(self.repository)):
            versions = self.policy.select(repo.list_versions(self.repository / name))
            if versions:
                chosen[name] = versions
        return chosen

    async def load(self) -> None:
        """Load and warm every chosen version (concurrently); failures are logged, kept."""
        start = time.perf_counter()
        if not self.repository.is_dir():
            log.warning("model repository %s does not exist; serving no models", self.repository)
        chosen = self.chosen_versions()
        await asyncio.gather(*(self.load_version(name, v)
                               for name, versions in chosen.items() for v in versions))
        self._loaded = True
        available = [f"{m.name}/{m.version}" for m in self.models()
                     if m.state is ModelState.AVAILABLE]
        failed = [f"{m.name}/{m.version}" for m in self.models() if m.state is ModelState.FAILED]
        log.info("registry ready in %.2fs: serving %s%s", time.perf_counter() - start,
                 ", ".join(available) or "nothing",
                 f"; failed: {', '.join(failed)}" if failed else "")

    def control(self) -> RepositoryControl:
        """What changes the served versions after startup: polling and load/unload."""
        return RepositoryControl(self, self.settings)

    def places(self, name: str) -> bool:
        """Whether this registry serves model ``name`` (an engine serves those placed on it)."""
        return True

    async def before_retire(self) -> None:
        """Called before a version stops taking requests while another serves in its place
        (a reload, a newer version): an engine makes its front ends see the successor first
        (serving/engine/registry.py). Nothing to do when requests come from this process."""

    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The requested version, or the latest AVAILABLE one when ``version`` is None."""
        versions = self._versions.get(name)
        if not versions:
            raise ModelNotFound(f"model {name!r} is not served")
        if version is None:
            available = [v for v, m in versions.items() if m.state is ModelState.AVAILABLE]
            if available:
                return versions[max(available)]
            states = ", ".join(f"{v}: {m.state}" for v, m in sorted(versions.items()))
            raise ModelNotReady(f"model {name!r} has no available version ({states})")
        served = versions.get(version)
        if served is None or served.state is ModelState.END:
            raise ModelNotFound(f"version {version} of model {name!r} is not served")
        if served.state is not ModelState.AVAILABLE:
            detail = f": {served.error}" if served.error else ""
            raise ModelNotReady(f"version {version} of model {name!r} is {served.state}{detail}")
        return served

    def unavailable(self) -> list[str]:
        """Models the server is configured to serve that have no AVAILABLE version now:
        loading, failed, or unloaded on request. A model retired because it left the
        repository is no longer configured. An in-place reload or a new version keeps
        the serving copy AVAILABLE until its successor is, so neither shows up here."""
        return sorted(name for name, versions in self._versions.items()
                      if name not in self._retired
                      and all(m.state is not ModelState.AVAILABLE for m in versions.values()))

    def retire(self, name: str) -> None:
        """``name`` left the repository: its unloading no longer counts as unavailable."""
        self._retired.add(name)

    def knows(self, name: str) -> bool:
        """Whether any version of ``name`` was ever loaded (in any state)."""
        return bool(self._versions.get(name))

    def models(self) -> list[ServedModel]:
        """Every known version (FAILED and END included), by name then version."""
        return [m for name in sorted(self._versions)
                for _, m in sorted(self._versions[name].items())]

    async def load_version(self, name: str, version: int) -> ServedModel:
        """Load (or re-load) one version; it serves only once warmed."""
        path = self.repository / name / str(version)
        served = ServedModel(name, version, path)
        self._retired.discard(name)
        previous = self._versions.setdefault(name, {}).get(version)
        if previous is not None and previous.state in (ModelState.LOADING, ModelState.AVAILABLE):
            return previous
        self._versions[name][version] = served
        await self._open(served)
        self._set_gauge(served)
        return served

    async def _open(self, served: ServedModel) -> None:
        """Open, check, warm and batch one version; FAILED (with the reason) on any error."""
        name, version = served.name, served.version
        try:
            await asyncio.to_thread(open_version, served, self.settings)
            await self._start_batcher(served)
        except Exception as exc:  # any failure is reported and the version skipped
            served.fail(load_failure(exc))
            log.error("model %s version %d failed to load: %s: %s", name, version,
                      type(exc).__name__, exc)
            await served.shutdown(0.0)
            served.model = None
        else:
            served.state = ModelState.AVAILABLE
            log.info("model %s version %d AVAILABLE on %s (warmed batch sizes %s; largest "
                     "batch %.2f ms%s)", name, version, served.providers,
                     sorted(served.warmup_timings), served.max_batch_s * 1000,
                     ", run inline" if served.runs_inline else "")

    async def replace_version(self, name: str, version: int) -> ServedModel:
        """Load a version's files again beside the serving copy and swap once warm.

        The serving copy keeps answering until the new one is AVAILABLE, then drains;
        a copy that fails to load is returned FAILED and the serving one is kept.
        """
        current = self._versions.get(name, {}).get(version)
        if current is None or current.state is not ModelState.AVAILABLE:
            return await self.load_version(name, version)
        fresh = ServedModel(name, version, current.path)
        await self._open(fresh)
        if fresh.state is not ModelState.AVAILABLE:
            return fresh
        self._versions[name][version] = fresh
        await self.before_retire()
        current.state = ModelState.UNLOADING
        await current.shutdown(self.settings.shutdown_timeout_s)
        current.state, current.model = ModelState.END, None
        log.info("model %s version %d reloaded in place", name, version)
        return fresh

    async def _start_batcher(self, served: ServedModel) -> None:
        assert served.model is not None and served.batching is not None
        config = served.batching
        threads = self.settings.inference_threads
        inline_ms = self.settings.inline_batch_max_ms
        served.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"ort-{served.name}-{served.version}")
        observer = None
        if self.metrics is not None:
            observer = self.metrics.batch_observer(served.name, served.version,
                                                    config.max_batch_size)
        served.batcher = Batcher(served.model.run, name=f"{served.name}/{served.version}",
                                 max_batch_size=config.max_batch_size,
                                 max_queue_delay_s=config.max_queue_delay_ms / 1000.0,
                                 max_queue_size=config.max_queue_size,
                                 executor=served.executor, observer=observer,
                                 max_concurrent_batches=threads,
                                 inline=served.max_batch_s * 1000 <= inline_ms,
                                 batch_dim=served.manifest.batched)
        await served.batcher.start()
        served.backend = served.batcher

    async def unload_version(self, name: str, version: int,
                             drain_timeout_s: float | None = None) -> None:
        """Stop serving one version: new requests go to others, queued ones finish."""
        served = self._versions.get(name, {}).get(version)
        if served is None:
            raise ModelNotFound(f"version {version} of model {name!r} is not served")
        if served.state in (ModelState.END, ModelState.UNLOADING):
            return
        await self.before_retire()
        served.state = ModelState.UNLOADING
        self._set_gauge(served)
        timeout = self.settings.shutdown_timeout_s if drain_timeout_s is None else drain_timeout_s
        await served.shutdown(timeout)
        served.state = ModelState.END
        served.model = None  # release the session: reloads must not accumulate memory
        log.info("model %s version %d unloaded", name, version)

    async def close(self, drain_timeout_s: float = 0.0) -> None:
        """Drain (up to ``drain_timeout_s``) and close every version."""
        self._closing = True
        live = [m for m in self.models() if m.state in (ModelState.AVAILABLE, ModelState.LOADING)]
        for served in live:
            served.state = ModelState.UNLOADING
        await asyncio.gather(*(m.shutdown(drain_timeout_s) for m in live))
        for served in live:
            served.state = ModelState.END
            self._set_gauge(served)

    def _set_gauge(self, served: ServedModel) -> None:
        if self.metrics is not None:
            self.metrics.set_model_loaded(served.name, served.version,
                                          served.state is ModelState.AVAILABLE)


def load_failure(exc: Exception) -> str:
    """The reason a version failed to load, as API clients read it (model status, the
    repository index): our own checks' messages (ValueError: manifest, checksum,
    signature), else the kind of failure only; the runtime's message, which names
    absolute paths, goes to the log."""
    if isinstance(exc, ValueError):
        return str(exc)
    return (f"the model could not be opened ({type(exc).__name__}); the server log has "
            f"the details")

