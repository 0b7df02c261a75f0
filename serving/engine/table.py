"""The engine's models as its front ends see them: one entry per version, with an
instance number per loaded copy, and a generation that grows with every change.

An in-place reload puts a fresh copy of a version beside the serving one; requests name
the copy (``instance``) they were decoded for, so a front end never runs a request on a
copy whose manifest it has not seen. A copy that left the registry is no longer found
(the front end then retries on the successor it serves, as the dataplane does in one
process).
"""

from __future__ import annotations

import itertools
from typing import Any

from serving.models.registry import ModelRegistry, ServedModel
from serving.models.states import ModelState


class ModelTable:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.generation = 0
        self._numbers = itertools.count(1)
        self._copies: dict[int, tuple[ServedModel, int]] = {}  # id(copy) -> (copy, instance)
        self._by_instance: dict[int, ServedModel] = {}
        self._last: tuple[Any, ...] | None = None

    def instance(self, number: int) -> ServedModel | None:
        return self._by_instance.get(number)

    def changed(self) -> bool:
        """Whether anything a front end sees changed since the last call (then the
        generation grows)."""
        models = self.registry.models()
        self._prune(models)
        key = (self.registry.ready, tuple(self.registry.unavailable()),
               tuple((m.name, m.version, self._number(m), m.state, m.error) for m in models))
        if key == self._last:
            return False
        self._last = key
        self.generation += 1
        return True

    def message(self) -> dict[str, Any]:
        """The STATE message (serving/engine/wire.py) for the current generation."""
        return {"generation": self.generation, "ready": self.registry.ready,
                "unavailable": self.registry.unavailable(),
                "models": [self._entry(m) for m in self.registry.models()]}

    def _entry(self, served: ServedModel) -> dict[str, Any]:
        serving = served.state is ModelState.AVAILABLE
        limits = served.batching
        return {"name": served.name, "version": served.version,
                "instance": self._number(served), "state": served.state, "error": served.error,
                "manifest": served.manifest.model_dump(mode="json") if serving else None,
                "batching": None if limits is None else [
                    limits.max_batch_size, limits.max_queue_delay_ms, limits.max_queue_size],
                "providers": served.providers, "warmup": sorted(served.warmup_timings)}

    def _number(self, served: ServedModel) -> int:
        known = self._copies.get(id(served))
        if known is None:
            number = next(self._numbers)
            # The copy is held here, so its id() cannot be reused while it is listed.
            self._copies[id(served)] = (served, number)
            self._by_instance[number] = served
            return number
        return known[1]

    def _prune(self, models: list[ServedModel]) -> None:
        current = {id(m) for m in models}
        for key in [k for k in self._copies if k not in current]:
            _, number = self._copies.pop(key)
            del self._by_instance[number]
