"""What one server process holds for its layout: its own registry, or a front end's.

Per-worker: a ModelRegistry (sessions and batchers in this process). Engine: a
FrontendRegistry connected to the engines named by ``engine_addresses`` (the supervisor
started them for all its workers), or, when none are named, to engines this process
starts and stops itself (``modelserve serve --layout engine`` with one worker, tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serving.config import Settings
from serving.engine.placement import resolve_layout

if TYPE_CHECKING:
    from serving.engine.group import EngineGroup
    from serving.metrics import Metrics
    from serving.models.registry import ModelRegistry


def build_registry(settings: Settings, metrics: Metrics | None
                   ) -> tuple[ModelRegistry, EngineGroup | None]:
    """The registry for this process, and the engines it must run (or None)."""
    if resolve_layout(settings) != "engine":
        from serving.models.registry import ModelRegistry

        return ModelRegistry(settings, metrics), None
    from serving.engine.mirror import FrontendRegistry

    group = None
    addresses = list(settings.engine_addresses)
    if not addresses:
        from serving.engine.group import EngineGroup

        group = EngineGroup(settings)
        addresses = group.addresses
    return FrontendRegistry(settings, metrics, addresses=addresses), group
