"""One server process: uvicorn (REST) and grpc.aio in one event loop, and its lifecycle.

Startup: the HTTP server answers liveness at once; models load in the background
and readiness turns true when the registry is ready. Shutdown on SIGTERM/SIGINT:
readiness false at once (draining hooks, e.g. gRPC health NOT_SERVING), requests
still accepted for ``drain_seconds`` so load balancers notice, then listeners
close, in-flight and queued requests finish, batchers drain, and the process
exits within ``shutdown_timeout_s``. Several workers: see serving/workers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import signal
import socket
import time
from collections.abc import Generator
from typing import Any

import uvicorn

from serving.banner import ready_banner
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.engine.layout import build_registry
from serving.metrics import Metrics
from serving.rest.app import create_app
from serving.rest.connection_limits import ConnectionLimits, limited_class
from serving.rest.granian_server import GranianServer
from serving.rest.hot_protocol import protocol_class

logger = logging.getLogger(__name__)
# Young-generation collections every 700 container allocations cost ~7% of a digit
# request (its JSON lists and dicts die young anyway); collect less often.
GC_THRESHOLDS = (20_000, 20, 20)


class StartupError(RuntimeError):
    """The server cannot start (a port taken, say): reported as one line, no traceback."""


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: this module owns the lifecycle."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn on our httptools protocol: the hot task routes and the connection limits
    (serving/rest/hot_protocol.py, connection_limits.py)."""
    lane = getattr(app, "protocol_lane", None)
    limits = ConnectionLimits(settings)
    http: Any = limited_class(limits) if lane is None else protocol_class(lane, limits)
    return uvicorn.Config(app, host=settings.host, port=settings.http_port, loop="none",
                          http=http, lifespan="on", access_log=settings.access_log,
                          limit_concurrency=settings.max_connections,
                          log_config=None, log_level=settings.log_level.lower(),
                          timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s)),
                          server_header=False, date_header=False)


def build_grpc(dataplane: DataPlane, settings: Settings) -> Any | None:
    """The gRPC server from serving.grpc.server, when it exists and gRPC is enabled."""
    if settings.grpc_port < 0 or importlib.util.find_spec("serving.grpc.server") is None:
        return None
    from serving.grpc.server import build_grpc_server

    return build_grpc_server(dataplane, settings)


class ServerProcess:
    """Everything one process serves; ``run`` returns when the server has stopped."""

    def __init__(self, settings: Settings, *, sockets: list[socket.socket] | None = None
                 ) -> None:
        self.settings = settings
        self.sockets = sockets
        self.metrics = Metrics()
        # Per-worker: sessions here; engine layout: a front end of the engines (serving/engine).
        self.registry, self.engines = build_registry(settings, self.metrics)
        self.dataplane = DataPlane(self.registry, settings, self.metrics)
        self.app = create_app(settings, self.dataplane, self.metrics)
        self.http: Any = _UvicornServer(uvicorn_config(self.app, settings)) \
            if settings.http_server == "uvicorn" else GranianServer(self.app, settings)
        self.grpc: Any | None = None
        self._stop = asyncio.Event()
        self._load_task: asyncio.Task[None] | None = None
        self._engine_task: asyncio.Task[None] | None = None

    def request_stop(self) -> None:
        if self._stop.is_set():
            logger.warning("second stop signal: stopping without waiting")
            self.http.force_exit = True
        self._stop.set()

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            self.grpc = build_grpc(self.dataplane, self.settings)
        except RuntimeError as exc:
            raise StartupError(f"cannot serve gRPC on {self.settings.host}:"
                               f"{self.settings.grpc_port}: {exc}") from exc
        self.app.state.grpc_port = getattr(self.grpc, "port", None)
        if self.engines is not None:  # engines of its own (no supervisor started them)
            self.engines.start()
            self._engine_task = asyncio.create_task(self._watch_engines())
        http_task = asyncio.create_task(self.http.serve(sockets=self.sockets))
        self._load_task = asyncio.create_task(self._load())
        if self.grpc is not None:
            await self.grpc.start()
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        failed = http_task.done() and not self._stop.is_set()
        stop_task.cancel()
        await self.shutdown(http_task)
        return 1 if failed or not self.http.started else 0

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            await self.registry.load()
            await self.dataplane.repository.start()  # polls when repository_poll_s > 0
        except Exception:
            logger.exception("loading the model repository failed; the server stays not ready")
            return
        logger.info("models loaded in %.2f s; ready=%s", time.perf_counter() - started,
                    self.dataplane.ready())
        logger.info(ready_banner(self.settings, self.registry, self.app.state.grpc_port,
                                 self.sockets))
        # Everything loaded so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise show up as latency spikes.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    async def shutdown(self, http_task: asyncio.Task[None]) -> None:
        budget = self.settings.shutdown_timeout_s
        deadline = time.monotonic() + budget
        self.dataplane.start_draining()
        if self.engines is not None:
            self.engines.stop_restarting()
        drain = min(self.settings.drain_seconds, budget / 2)
        logger.info("draining: not ready; still serving for %.1f s", drain)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._second_signal(), timeout=drain)
        self.http.should_exit = True  # closes listeners, finishes in-flight requests
        # A socket handed in stays listening while any copy of it is open (the event loop
        # serves a duplicate): close ours too, so new connections are refused, not parked.
        for sock in self.sockets or []:
            sock.close()
        grace = max(0.0, deadline - time.monotonic())
        waits: list[Any] = [asyncio.wait({http_task}, timeout=grace)]
        if self.grpc is not None:
            waits.append(self.grpc.stop(grace))
        await asyncio.gather(*waits, return_exceptions=True)
        if not http_task.done():
            self.http.force_exit = True
            await asyncio.wait({http_task}, timeout=1.0)
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await self.dataplane.repository.close()  # no reloads while closing
        await self._close_registry(max(0.5, deadline - time.monotonic()))
        await self._stop_engines(max(1.0, deadline - time.monotonic()))
        self.dataplane.close()
        logger.info("stopped")

    async def _watch_engines(self) -> None:
        assert self.engines is not None
        while True:
            self.engines.check()
            await asyncio.sleep(0.1)

    async def _stop_engines(self, timeout: float) -> None:
        """After the front end (this process) has stopped serving: engines drain last."""
        if self.engines is None:
            return
        if self._engine_task is not None:
            self._engine_task.cancel()
        await asyncio.to_thread(self.engines.stop, timeout)

    async def _second_signal(self) -> None:
        while not self.http.force_exit:
            await asyncio.sleep(0.05)

    async def _close_registry(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.registry.close(drain_timeout_s=timeout),
                                   timeout=timeout + 1.0)
        except TimeoutError:
            logger.warning("batchers did not drain within %.1f s", timeout)
        except Exception:
            logger.exception("closing the registry failed")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_process(settings: Settings, sockets: list[socket.socket] | None = None) -> int:
    """Run one server process to completion (blocking); returns its exit status."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(ServerProcess(settings, sockets=sockets).run())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
