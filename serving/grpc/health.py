"""grpc.health.v1.Health whose statuses follow the DataPlane's readiness.

Every listed service (and "" for the whole server) is SERVING while the server is
ready, NOT_SERVING while models load, and NOT_SERVING for good once draining starts.
``set_serving(False/True)`` forces a status; ``set_serving(None)`` follows readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from grpc_health.v1 import health, health_pb2

from serving.dataplane import DataPlane

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
POLL_S = 0.5  # how often readiness is re-read while someone watches


class ReadinessHealth(health.aio.HealthServicer):
    def __init__(self, dataplane: DataPlane, services: Iterable[str]) -> None:
        super().__init__()
        self._dataplane = dataplane
        self._services = ("", *services)
        self._forced: bool | None = None
        self._watchers = 0
        self._poller: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        for service in self._services:
            self._server_status[service] = NOT_SERVING
        dataplane.on_draining(self._on_draining)

    def set_serving(self, serving: bool | None) -> None:
        """Force SERVING/NOT_SERVING (None: follow readiness again). Call in the loop."""
        self._forced = serving
        self._spawn(self.refresh())

    async def refresh(self) -> None:
        ready = self._dataplane.ready() if self._forced is None else self._forced
        status = SERVING if ready else NOT_SERVING
        for service in self._services:
            if self._server_status.get(service) != status:
                await self.set(service, status)  # a no-op once draining

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        await self.refresh()
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        await self.refresh()
        self._watchers += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            await super().Watch(request, context)
        finally:
            self._watchers -= 1

    async def _poll(self) -> None:
        while self._watchers > 0:
            await self.refresh()
            await asyncio.sleep(POLL_S)

    def _on_draining(self) -> None:
        self._spawn(self.enter_graceful_shutdown())

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop running: nothing is serving health checks yet
            coro.close()
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
