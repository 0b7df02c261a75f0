"""A front end's registry: the engines' model states, with the codecs to decode for them.

The engines are the source of truth for which versions exist and in which state (they
load the sessions, poll the repository and run load/unload). Each engine sends its
table on every change; the front end builds the codec of every AVAILABLE version from
the manifest the engine sends (so a bare model.onnx gets the signature the engine read
from its graph), and only then counts that version AVAILABLE here and acknowledges the
table. An engine retires a version only after every front end acknowledged a table in
which its successor serves (serving/engine/registry.py), so reloads stay without
downtime across the hop. A version AVAILABLE on several engines is served by all of
them (each request to the one with the fewest requests in flight).

Read-side methods (``get``, ``models``, ``knows``) are ModelRegistry's, over the merged
table; versions change only through the engines (``control`` forwards load/unload).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from serving.config import Settings
from serving.engine.client import EngineLink
from serving.errors import InvalidInput, ModelNotReady
from serving.metrics import Metrics
from serving.models.manifest import Manifest
from serving.models.registry import ModelRegistry, ServedModel
from serving.models.served_model import BatchLimits
from serving.models.states import ModelState
from serving.models.watcher import RepositoryControl
from serving.tasks import task_of

log = logging.getLogger(__name__)
# When a version is known to several engines in different states, the one shown.
_STATE_ORDER = ("AVAILABLE", "LOADING", "UNLOADING", "FAILED", "END")
Key = tuple[str, int]


class EngineRoute:
    """The inference backend of a version served by engines: (link, instance) pairs."""

    def __init__(self, routes: Sequence[tuple[EngineLink, int]]) -> None:
        self.routes = list(routes)

    async def submit(self, inputs: dict[str, np.ndarray], *,
                     deadline: float | None = None) -> dict[str, np.ndarray]:
        link, instance = (self.routes[0] if len(self.routes) == 1 else
                          min(self.routes, key=lambda route: route[0].in_flight))
        return await link.submit(instance, inputs, deadline=deadline)


class FrontendRegistry(ModelRegistry):
    def __init__(self, settings: Settings, metrics: Metrics | None = None, *,
                 addresses: Sequence[str]) -> None:
        super().__init__(settings, metrics)
        self.links = [EngineLink(i, address, arena_bytes=settings.engine_arena_bytes,
                                 on_state=self._on_state)
                      for i, address in enumerate(addresses)]
        self._tables: dict[int, dict[Key, dict[str, Any]]] = {}
        self._unavailable: dict[int, list[str]] = {}
        self._codecs: dict[tuple[str, int, str], Any] = {}
        self._manifests: dict[str, Manifest] = {}
        self._routes: dict[Key, tuple[Any, ...]] = {}
        self.on_change: list[Callable[[], None]] = []  # after each new table (labels)

    # Lifecycle ------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Every engine connected and past its first load."""
        return (self._loaded and not self._closing
                and all(link.up and link.ready for link in self.links))

    async def load(self) -> None:
        """Connect to the engines and wait until each has loaded its models."""
        start = time.perf_counter()
        for link in self.links:
            await link.start()
        while not all(link.up and link.ready for link in self.links):
            await asyncio.sleep(0.02)
        self._loaded = True
        available = [f"{m.name}/{m.version}" for m in self.models()
                     if m.state is ModelState.AVAILABLE]
        log.info("front end ready in %.2fs: engines %s serve %s", time.perf_counter() - start,
                 ", ".join(link.address for link in self.links), ", ".join(available) or
                 "nothing")

    async def close(self, drain_timeout_s: float = 0.0) -> None:
        """Requests in flight were answered before this (the server drains first)."""
        self._closing = True
        for link in self.links:
            await link.close()

    def control(self) -> RepositoryControl:
        return EngineRepositoryControl(self)

    def unavailable(self) -> list[str]:
        """Models some engine is configured to serve that no engine serves now."""
        serving = {m.name for m in self.models() if m.state == ModelState.AVAILABLE}
        return sorted({name for names in self._unavailable.values() for name in names}
                      - serving)

    # Versions change in the engines only ------------------------------------------------
    async def load_version(self, name: str, version: int) -> ServedModel:
        raise NotImplementedError("front ends do not load versions; their engines do")

    async def replace_version(self, name: str, version: int) -> ServedModel:
        raise NotImplementedError("front ends do not load versions; their engines do")

    async def unload_version(self, name: str, version: int,
                             drain_timeout_s: float | None = None) -> None:
        raise NotImplementedError("front ends do not unload versions; their engines do")

    async def reload(self) -> None:
        raise NotImplementedError("front ends do not reload; their engines poll")

    # Engine tables ----------------------------------------------------------------------
    async def _on_state(self, link: EngineLink, state: dict[str, Any] | None) -> None:
        """A new table from ``link`` (None: the engine went away)."""
        table: dict[Key, dict[str, Any]] = {}
        if state is None:  # its models stay known, not ready (503), until it is back
            table = self._tables.get(link.index, {})
            for entry in table.values():
                entry["state"], entry["error"] = "LOADING", f"engine {link.index} is restarting"
            self._unavailable[link.index] = sorted({name for name, _ in table})
        else:
            for m in state["models"]:  # during a reload a version has two copies: the
                key = (m["name"], m["version"])  # serving one is the one shown
                if key not in table or m["state"] == ModelState.AVAILABLE:
                    table[key] = m
            for entry in table.values():
                entry["digest"] = _digest(entry["manifest"])
            await self._build_codecs(table.values())
            self._tables[link.index] = table
            self._unavailable[link.index] = list(state["unavailable"])
        self._merge()
        for hook in self.on_change:
            hook()

    async def _build_codecs(self, entries: Any) -> None:
        wanted = [m for m in entries if m["state"] == ModelState.AVAILABLE
                  and m["manifest"] is not None and _codec_key(m) not in self._codecs]
        for entry in wanted:
            self._codecs[_codec_key(entry)] = await asyncio.to_thread(self._codec, entry)

    def _codec(self, entry: dict[str, Any]) -> Any:
        """The codec of the manifest's task, as the engine's own load builds it."""
        manifest = self._manifest(entry)
        task = task_of(manifest)
        path = self.repository / entry["name"] / str(entry["version"])
        return None if task is None else task.codec(manifest, path, self.settings)

    def _merge(self) -> None:
        """Rebuild ``_versions`` from every engine's table, keeping the objects of versions
        whose routes did not change (so a request's retry finds a new copy only when the
        engines have one)."""
        merged: dict[Key, list[tuple[int, dict[str, Any]]]] = {}
        for index, table in sorted(self._tables.items()):
            for key, entry in table.items():
                merged.setdefault(key, []).append((index, entry))
        versions: dict[str, dict[int, ServedModel]] = {}
        for (name, version), entries in sorted(merged.items()):
            versions.setdefault(name, {})[version] = self._served(name, version, entries)
        gone = set(self._routes) - set(merged)
        for key in gone:
            del self._routes[key]
        self._versions = versions

    def _served(self, name: str, version: int,
                entries: list[tuple[int, dict[str, Any]]]) -> ServedModel:
        live = [(index, e) for index, e in entries if e["state"] == ModelState.AVAILABLE
                and e["manifest"] is not None and _codec_key(e) in self._codecs]
        routes = tuple((index, e["instance"]) for index, e in live)
        digest = _codec_key(live[0][1]) if live else None
        previous = self._versions.get(name, {}).get(version)
        key = (name, version)
        if previous is not None and self._routes.get(key) == (routes, digest):
            served = previous  # the same copies: only the state may have changed
        else:
            served = ServedModel(name, version, self.repository / name / str(version))
            self._routes[key] = (routes, digest)
            # A version not serving now (its engine restarting) keeps its manifest, so
            # that requests for its task hear "not ready", not "no such model".
            known = [e for _, e in entries if e["manifest"] is not None]
            if known:
                served.manifest = self._manifest(known[0])
            if live:
                self._fill(served, live[0][1], routes)
            if previous is not None:  # requests still holding it look for its successor
                previous.state, previous.backend = ModelState.END, None
        if live:
            served.state, served.error = ModelState.AVAILABLE, None
        else:
            state, error = _shown_state([e for _, e in entries])
            served.state, served.error = ModelState(state), error
        return served

    def _manifest(self, entry: dict[str, Any]) -> Manifest:
        manifest = self._manifests.get(entry["digest"])
        if manifest is None:
            manifest = self._manifests[entry["digest"]] = \
                Manifest.model_validate(entry["manifest"])
        return manifest

    def _fill(self, served: ServedModel, entry: dict[str, Any],
              routes: tuple[tuple[int, int], ...]) -> None:
        served.task = task_of(served.manifest)
        served.codec = self._codecs[_codec_key(entry)]
        served.batching = BatchLimits(*entry["batching"])
        served.remote_providers = list(entry["providers"])
        served.warmup_timings = dict.fromkeys(entry["warmup"], 0.0)
        served.backend = EngineRoute([(self.links[index], instance)
                                      for index, instance in routes])


class EngineRepositoryControl(RepositoryControl):
    """Load and unload on request, carried out by the engines (which also poll)."""

    def __init__(self, registry: FrontendRegistry) -> None:
        super().__init__(registry, registry.settings)
        self.front = registry
        # Version labels are the front end's (routing happens here): applied again when
        # the engines' versions change, and on every poll for edits of labels.json.
        registry.on_change.append(lambda: self.labels.refresh(registry))

    async def start(self) -> None:
        """Labels only: each engine polls the repository for its models."""
        self.labels.refresh(self.front)
        if self.poll_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._poll_loop(), name="labels-poller")

    async def poll_once(self) -> None:
        self.labels.refresh(self.front)

    async def load_model(self, name: str) -> list[ServedModel]:
        await self._forward("load", name)
        self.labels.refresh(self.front)
        loaded = [m for m in self.front.models() if m.name == name and m.state != "END"]
        failed = [m for m in loaded if m.state == "FAILED"]
        if failed:  # an engine's own check raises first; this is the merged view's word
            reasons = "; ".join(f"version {m.version}: {m.error}" for m in failed)
            raise InvalidInput(f"failed to load {name!r}: {reasons}")
        return loaded

    async def unload_model(self, name: str) -> None:
        await self._forward("unload", name)

    async def _forward(self, op: str, name: str) -> None:
        """Every engine that places ``name`` does ``op``; the first error is raised."""
        self.check_api()
        if not self.front.ready:
            raise ModelNotReady("the server is still loading its models")
        placed = await asyncio.gather(*(link.control(op, name) for link in self.front.links))
        if not any(placed):
            raise InvalidInput(f"failed to {op} {name!r}: no engine is configured to serve it")


def _digest(manifest: dict[str, Any] | None) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()


def _codec_key(entry: dict[str, Any]) -> tuple[str, int, str]:
    """Versions whose manifests are equal share a codec (an in-place reload, engines)."""
    return entry["name"], entry["version"], entry["digest"]


def _shown_state(entries: list[dict[str, Any]]) -> tuple[str, str | None]:
    best = min(entries, key=lambda e: _STATE_ORDER.index(e["state"])
               if e["state"] in _STATE_ORDER else len(_STATE_ORDER))
    return best["state"], best["error"]

