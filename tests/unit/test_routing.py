"""serving/routing.py's pure parts: sticky keys, the weighted choice, output comparison."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serving.errors import InvalidInput, ModelNotFound
from serving.models.labels import ModelLabels, parse
from serving.routing import Router, compare, key_unit, routing_key


class _Registry:
    """Every version AVAILABLE except those in ``down``."""

    def __init__(self, down: set[int] | None = None) -> None:
        self.down = down or set()

    def get(self, name: str, version: int | None = None) -> Any:
        if version in self.down:
            raise ModelNotFound("gone")
        return SimpleNamespace(name=name, version=version)


def _router(document: dict[str, Any], down: set[int] | None = None) -> Router:
    labels = ModelLabels(Path("."))
    labels._rollouts["m"] = parse(document)  # what refresh() would have applied
    return Router(_Registry(down), labels, None)  # type: ignore[arg-type]


def test_key_units_are_stable_and_spread() -> None:
    assert key_unit("m", "alice") == key_unit("m", "alice")
    assert key_unit("m", "alice") != key_unit("other", "alice")
    units = [key_unit("m", f"user-{i}") for i in range(10_000)]
    assert all(0 <= u < 1 for u in units)
    assert abs(np.mean(units) - 0.5) < 0.01


def test_the_split_follows_the_weights_and_the_key() -> None:
    router = _router({"labels": {"stable": 1, "canary": 2},
                      "traffic": {"stable": 90, "canary": 10}})
    counts = Counter(router.resolve("m", None) for _ in range(20_000))
    assert abs(counts[2] / 20_000 - 0.10) < 0.01
    for i in range(200):
        assert len({router.resolve("m", None, key=f"k{i}") for _ in range(5)}) == 1
    # Named versions and labels bypass the split; both at once is refused.
    assert router.resolve("m", 1) == 1 and router.resolve("m", None, "canary") == 2
    with pytest.raises(InvalidInput, match="not both"):
        router.resolve("m", 1, "canary")


def test_a_growing_share_keeps_its_users() -> None:
    small = _router({"labels": {"a": 1, "b": 2}, "traffic": {"a": 95, "b": 5}})
    large = _router({"labels": {"a": 1, "b": 2}, "traffic": {"a": 50, "b": 50}})
    keys = [f"user-{i}" for i in range(2000)]
    on_b = {k for k in keys if small.resolve("m", None, key=k) == 2}
    assert on_b and all(large.resolve("m", None, key=k) == 2 for k in on_b)


def test_a_version_that_stopped_serving_drops_out_of_the_split() -> None:
    router = _router({"labels": {"a": 1, "b": 2}, "traffic": {"a": 50, "b": 50}}, down={2})
    assert {router.resolve("m", None) for _ in range(200)} == {1}
    everything_down = _router({"labels": {"a": 1}, "traffic": {"a": 1}}, down={1})
    assert everything_down.resolve("m", None) is None  # the latest, as without labels


def test_routing_keys_are_bounded() -> None:
    assert routing_key("") is None and routing_key("u1") == "u1"
    with pytest.raises(InvalidInput, match="longer than"):
        routing_key("x" * 257)


def _generic(first_output: str = "y") -> Any:
    spec = SimpleNamespace(name=first_output)
    return SimpleNamespace(manifest=SimpleNamespace(postprocessing=None, outputs=[spec]))


def test_compare_counts_rows_and_the_largest_difference() -> None:
    primary = {"y": np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.4]], dtype=np.float32)}
    shadow = {"y": np.array([[0.2, 0.8], [0.3, 0.7], [0.5, 0.4]], dtype=np.float32)}
    agree, disagree, largest = compare(_generic(), primary, shadow)  # type: ignore[misc]
    assert (agree, disagree) == (2, 1)
    assert largest == pytest.approx(0.5)
    assert compare(_generic(), primary, {"y": np.zeros((2, 2), np.float32)}) is None
    assert compare(_generic(), primary, {"z": primary["y"]}) is None


async def test_a_shadow_request_never_touches_the_callers_stage_record() -> None:
    """The shadow runs in its own context: its batch must not land on the caller's stages
    (Server-Timing, span, capture), which the caller's response is still being built from."""
    from serving import stages as request_stages

    seen: list[Any] = []

    class Candidate(SimpleNamespace):
        async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            seen.append(request_stages.current.get())  # what the batcher would stamp
            return {"y": inputs["x"]}

    class Registry(_Registry):
        def get(self, name: str, version: int | None = None) -> Any:
            return Candidate(name=name, version=version, batcher=None)

    labels = ModelLabels(Path("."))
    labels._rollouts["m"] = parse({"labels": {"stable": 1, "canary": 2},
                                   "shadow": {"primary": "stable", "candidate": "canary",
                                              "share": 1.0}})
    router = Router(Registry(), labels, None)  # type: ignore[arg-type]
    caller = request_stages.start("m")
    primary = SimpleNamespace(name="m", version=1, manifest=_generic().manifest)

    async def feeds(served: Any) -> dict[str, np.ndarray]:
        return {"x": np.ones((1, 2), np.float32)}

    router.mirror(primary, feeds, {"y": np.ones((1, 2), np.float32)}, 0.001)  # type: ignore[arg-type]
    await asyncio.gather(*router._tasks)
    assert seen == [None]
    assert request_stages.current.get() is caller  # the caller's own record is still its
