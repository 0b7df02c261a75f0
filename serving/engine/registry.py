"""The engine's registry: ModelRegistry for the models placed on its device, whose
versions retire only once every front end serves from their successors.

``before_retire`` (called by ModelRegistry before a reloaded or superseded version stops
taking requests) publishes the model table and waits, bounded, until every connected
front end acknowledged it: from then on no front end sends new requests to the old
copy, and the ones it sent before are already queued there and drain, as in one process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from serving.config import Settings
from serving.engine.placement import places
from serving.metrics import Metrics
from serving.models.registry import ModelRegistry


class EngineRegistry(ModelRegistry):
    def __init__(self, settings: Settings, metrics: Metrics | None, device: str) -> None:
        super().__init__(settings, metrics)
        self.device = device
        # Set by the engine: publish the table and wait for the front ends' acknowledgements.
        self.publish: Callable[[], Awaitable[None]] | None = None

    def places(self, name: str) -> bool:
        return places(self.settings, name, self.device)

    async def before_retire(self) -> None:
        if self.publish is not None:
            await self.publish()
