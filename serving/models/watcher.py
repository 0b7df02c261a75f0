"""Model lifecycle while serving: repository polling and explicit load/unload.

``RepositoryControl`` is the one place that changes which versions serve after
startup; the poller (``repository_poll_s`` > 0) and the management APIs (v2
repository extension over REST and gRPC) both go through it, one change at a time.

Promises (docs/reliability.md):
- a version is picked up by polling only once its files stopped changing between
  two polls (and it has a manifest, or a bare model.onnx), so a half-copied directory
  is never loaded; its sha256 is checked on load anyway (a bare model's is computed);
- a new version is loaded and warmed before traffic moves to it; versions the
  policy no longer wants are drained and unloaded only once a wanted version of
  that model is AVAILABLE, so a version that fails to load leaves the serving one
  untouched;
- a served version whose files changed, or an explicit load, is reloaded in place:
  the old copy serves until the new one is warm (``ModelRegistry.replace_version``);
- an explicitly unloaded model stays unloaded (polling ignores it) until loaded again,
  and (with strict_readiness) keeps the server not ready meanwhile;
- load and unload on request only when the repository_api setting enables them
  (403 / PERMISSION_DENIED otherwise); polling is not affected.
Reloads and new versions never leave a model without an AVAILABLE version, so
readiness does not flap while they happen (ModelRegistry.unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from serving.config import Settings
from serving.errors import InvalidInput, ModelNotFound, ModelNotReady, PermissionDenied
from serving.models import manifest as repo
from serving.models.labels import ModelLabels
from serving.models.states import ModelState

if TYPE_CHECKING:
    from serving.models.registry import ModelRegistry, ServedModel

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]  # (relative path, size, mtime_ns) per file
Scan = dict[str, dict[int, Signature]]
API_DISABLED = ("the repository management API is disabled on this server (setting "
                "repository_api): models cannot be loaded or unloaded on request")
# What an unload stops, and which versions a model no longer wanted gives up.
_LIVE = (ModelState.AVAILABLE, ModelState.FAILED, ModelState.LOADING)
_RETIRABLE = (ModelState.AVAILABLE, ModelState.FAILED)
_MAX_FILES = 10_000  # a version directory is a handful of files; bound the walk anyway


def version_signature(version_dir: Path) -> Signature:
    """What a version directory holds now; equal signatures across polls mean it settled."""
    found: list[tuple[str, int, int]] = []
    stack = [version_dir]
    while stack and len(found) < _MAX_FILES:
        folder = stack.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    stat = entry.stat()
                    rel = os.path.relpath(entry.path, version_dir)
                    found.append((rel, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def scan_repository(repository: Path) -> Scan:
    """Every complete version (a manifest, or a bare model.onnx) of every model, with its
    signature."""
    return {name: {v: version_signature(repository / name / str(v))
                   for v in repo.list_versions(repository / name)}
            for name in repo.list_models(repository)}


class RepositoryControl:
    def __init__(self, registry: ModelRegistry, settings: Settings) -> None:
        self.registry = registry
        self.poll_s = settings.repository_poll_s
        self.api_enabled = settings.repository_api
        self._lock = asyncio.Lock()
        self._held: set[str] = set()  # explicitly unloaded: polling leaves them alone
        self._seen: dict[tuple[str, int], Signature] = {}  # the previous scan
        self._loaded: dict[tuple[str, int], Signature] = {}  # what each load attempt read
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.polls = 0
        # Each model's labels.json (serving/models/labels.py), applied after its versions.
        self.labels = ModelLabels(registry.repository)

    # Lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Remember what the startup load read; poll when ``repository_poll_s`` > 0."""
        scan = await self._scan()
        self._seen = _flatten(scan)
        self._loaded = {key: sig for key, sig in self._seen.items()
                        if self._state(*key) is not None}
        self.labels.refresh(self.registry)
        if self.poll_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name="repository-poller")
            log.info("polling %s every %.2f s", self.registry.repository, self.poll_s)

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        # Python 3.11's wait_for can swallow a cancellation that lands as the awaited
        # thing finishes (a batcher drain during a poll): cancel until the task is done;
        # the loop also checks _closing, so it ends at its next turn at the latest.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()

    async def _scan(self) -> Scan:
        """The repository's complete versions of the models this registry serves."""
        scan = await asyncio.to_thread(scan_repository, self.registry.repository)
        return {name: versions for name, versions in scan.items() if self.registry.places(name)}

    async def _poll_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll_once()
            except Exception:  # a broken poll must not stop the next ones
                log.exception("polling the model repository failed")

    # Polling ---------------------------------------------------------------
    async def poll_once(self) -> None:
        """Apply the repository as it is now: settled versions only."""
        async with self._lock:
            scan = await self._scan()
            names = set(scan) | {m.name for m in self.registry.models()}
            for name in sorted(names - self._held):
                versions = scan.get(name, {})
                settled = {v: sig for v, sig in versions.items()
                           if self._seen.get((name, v)) == sig}
                await self._sync(name, settled, removed=not versions, force=False)
            self._seen = _flatten(scan)
            self.labels.refresh(self.registry)  # after the versions it may point at
            self.polls += 1

    # Management API ----------------------------------------------------------
    def check_api(self) -> None:
        """Refuse load/unload on request unless the repository_api setting enables them."""
        if not self.api_enabled:
            raise PermissionDenied(API_DISABLED)

    async def load_model(self, name: str) -> list[ServedModel]:
        """Load (or reload in place) the versions the policy wants; raise if none serves."""
        self.check_api()
        if not self.registry.ready:
            raise ModelNotReady("the server is still loading its models")
        async with self._lock:
            scan = await self._scan()
            versions = scan.get(name, {})
            if not versions:
                raise InvalidInput(f"failed to load {name!r}: no complete version of it in "
                                   f"the model repository")
            self._held.discard(name)
            wanted = await self._sync(name, versions, removed=False, force=True)
            self._seen.update({(name, v): sig for v, sig in versions.items()})
            self.labels.refresh(self.registry)
        failed = [m for m in wanted if m.state is not ModelState.AVAILABLE]
        if failed:
            reasons = "; ".join(f"version {m.version}: {m.error}" for m in failed)
            raise InvalidInput(f"failed to load {name!r}: {reasons}")
        return wanted

    async def unload_model(self, name: str) -> None:
        """Drain and unload every version; polling leaves the model alone afterwards."""
        self.check_api()
        async with self._lock:
            live = [m for m in self.registry.models()
                    if m.name == name and m.state in _LIVE]
            if not live and name not in {m.name for m in self.registry.models()}:
                raise ModelNotFound(f"model {name!r} is not served")
            self._held.add(name)
            for served in live:
                await self.registry.unload_version(name, served.version)

    # The one way versions change ----------------------------------------------
    async def _sync(self, name: str, versions: dict[int, Signature], *, removed: bool,
                    force: bool) -> list[ServedModel]:
        """Load wanted versions (new first), then retire the others if one serves."""
        wanted = self.registry.policy.select(sorted(versions))
        results = [await self._bring_up(name, v, versions[v], force) for v in wanted]
        serving = any(self._state(name, v) is ModelState.AVAILABLE for v in wanted)
        if removed:
            self.registry.retire(name)  # not expected any more: readiness ignores it
        if serving or removed:
            for served in [m for m in self.registry.models() if m.name == name]:
                if served.version not in wanted and served.state in _RETIRABLE:
                    await self.registry.unload_version(name, served.version)
        return [m for m in results if m is not None]

    async def _bring_up(self, name: str, version: int, signature: Signature,
                        force: bool) -> ServedModel | None:
        """Load or reload one version when needed; what the attempt gave (or what serves)."""
        key = (name, version)
        state = self._state(name, version)
        changed = self._loaded.get(key) != signature
        if state is ModelState.AVAILABLE and (changed or force):
            served = await self.registry.replace_version(name, version)
        elif state in (None, ModelState.END) or (state is ModelState.FAILED
                                                  and (changed or force)):
            served = await self.registry.load_version(name, version)
        else:  # serving and unchanged, loading, or failed with the same files
            return self._find(name, version)
        self._loaded[key] = signature
        if served.state is not ModelState.AVAILABLE:
            log.warning("model %s version %d did not load (%s); serving versions are kept",
                        name, version, served.error)
        return served

    def _find(self, name: str, version: int) -> ServedModel | None:
        for served in self.registry.models():
            if served.name == name and served.version == version:
                return served
        return None

    def _state(self, name: str, version: int) -> ModelState | None:
        served = self._find(name, version)
        return None if served is None else served.state


def _flatten(scan: Scan) -> dict[tuple[str, int], Signature]:
    return {(name, v): sig for name, versions in scan.items() for v, sig in versions.items()}
