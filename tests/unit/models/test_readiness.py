"""Which models keep the server not ready (ModelRegistry.unavailable, DataPlane.ready).

Every state is reached by the real lifecycle calls (load, a failed load, unload on
request, a model leaving the repository), on the tiny models.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from serving.dataplane import DataPlane
from serving.metrics import Metrics
from serving.models.registry import ModelRegistry
from tests.fixtures.servers import server_settings
from tests.fixtures.tiny_models import digit_model, write_model_version


async def dataplane(repository: Path, **overrides) -> DataPlane:
    settings = server_settings(repository, **overrides)
    registry = ModelRegistry(settings, Metrics())
    await registry.load()
    plane = DataPlane(registry, settings)
    await plane.repository.start()
    return plane


async def test_a_failed_model_keeps_the_server_not_ready_unless_relaxed(
        tiny_model_repository: Path) -> None:
    write_model_version(tiny_model_repository, "broken", 1, digit_model(), sha256="0" * 64)
    strict = await dataplane(tiny_model_repository)
    relaxed = await dataplane(tiny_model_repository, strict_readiness=False)
    try:
        assert strict.registry.get("digit").state == "AVAILABLE"  # the others serve
        assert strict.unavailable_models() == ["broken"] and not strict.ready()
        assert relaxed.unavailable_models() == ["broken"] and relaxed.ready()
    finally:
        await strict.registry.close()
        await relaxed.registry.close()


async def test_a_model_loading_counts_until_it_is_available(tiny_model_repository: Path) -> None:
    plane = await dataplane(tiny_model_repository)
    try:
        assert plane.ready()
        write_model_version(tiny_model_repository, "digit2", 1, digit_model())
        loading = asyncio.create_task(plane.registry.load_version("digit2", 1))
        await asyncio.sleep(0)  # the task registered the version and waits on its thread
        assert plane.registry.models()[1].state == "LOADING"
        assert plane.unavailable_models() == ["digit2"] and not plane.ready()
        await loading
        assert plane.unavailable_models() == [] and plane.ready()
    finally:
        await plane.registry.close()


async def test_unload_on_request_holds_readiness_down_until_loaded_again(
        tiny_model_repository: Path) -> None:
    plane = await dataplane(tiny_model_repository)
    try:
        await plane.repository.unload_model("text")
        assert plane.unavailable_models() == ["text"] and not plane.ready()
        await plane.repository.poll_once()  # polling does not bring it back, nor readiness
        assert not plane.ready()
        await plane.repository.load_model("text")
        assert plane.unavailable_models() == [] and plane.ready()
    finally:
        await plane.registry.close()


async def test_a_model_removed_from_the_repository_is_no_longer_expected(
        tiny_model_repository: Path) -> None:
    plane = await dataplane(tiny_model_repository)
    try:
        shutil.rmtree(tiny_model_repository / "image")
        await plane.repository.poll_once()
        assert {m.name: m.state for m in plane.registry.models()}["image"] == "END"
        assert plane.unavailable_models() == [] and plane.ready()
    finally:
        await plane.registry.close()


async def test_draining_is_never_ready(tiny_model_repository: Path) -> None:
    plane = await dataplane(tiny_model_repository, strict_readiness=False)
    try:
        assert plane.ready()
        plane.start_draining()
        assert not plane.ready()
    finally:
        await plane.registry.close()
