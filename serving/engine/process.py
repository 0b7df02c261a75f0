"""The engine process: the sessions and batchers of one device, shared by every front end.

``python -m serving.engine --address ipc://... --device 0`` (settings as JSON on stdin;
started by serving/engine/group.py). It loads the models placed on its device with the
per-worker layout's ModelRegistry (checks, warm-up, one Batcher per version) and polls
the repository like a per-worker server; front ends connect to its ROUTER socket.

Each request is one task awaiting ``ServedModel.infer``: the Batcher merges requests
from every front end, answers deadlines and isolates a failing item exactly as in one
process. A CANCEL cancels the task, which takes the item out of the queue. A front end
that stops taking messages (the PING every ``wire.PING_S`` fails: ZeroMQ dropped its
connection) is forgotten and its requests are cancelled, freeing their queue places.
SIGTERM (sent by the supervisor once the front ends have stopped) drains the batchers
and exits; if front ends are still connected (a signal sent to every process at once)
it first keeps serving until they have left. SIGINT is ignored, so a Ctrl-C that
reaches the whole process group leaves the order to the supervisor. The engine also
stops when its parent goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq
from prometheus_client import Counter

from serving.config import Settings
from serving.engine import wire
from serving.engine.arena import MappedArena
from serving.engine.registry import EngineRegistry
from serving.engine.sockets import SocketReader
from serving.engine.table import ModelTable
from serving.errors import (
    EngineUnavailable,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    ServingError,
)
from serving.metrics import Metrics

log = logging.getLogger(__name__)
TICK_S = 0.02  # how often model states are compared with what the front ends were told
ACK_TIMEOUT_S = 5.0  # a front end that does not acknowledge a table by then is not waited for


@dataclass(eq=False)
class FrontEnd:
    identity: bytes
    pid: int
    arena: MappedArena | None
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    acked: int = 0


class Engine:
    def __init__(self, settings: Settings, address: str, device: str) -> None:
        self.settings = settings
        self.address = address
        self.metrics = Metrics()
        self.registry = EngineRegistry(settings, self.metrics, device)
        self.registry.publish = self.publish_and_wait
        self.control = self.registry.control()
        self.table = ModelTable(self.registry)
        self.frontends: dict[bytes, FrontEnd] = {}
        self.abandoned = Counter("engine_abandoned_items", "Requests an engine dropped because "
                                 "the front end that sent them went away", namespace="modelserve",
                                 registry=self.metrics.registry)
        self._context = zmq.Context()
        self._reader: SocketReader | None = None
        self._acked = asyncio.Event()
        self._controls: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._parent = os.getppid()

    # Lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a gone front end raises, not drops
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.bind(self.address)
        self._reader = SocketReader(sock, self._on_message)
        tasks = [asyncio.create_task(self._tick(), name="engine-tick"),
                 asyncio.create_task(self._load(), name="engine-load")]
        log.info("engine on %s (device %s, pid %d)", self.address, self.registry.device,
                 os.getpid())
        await self._stop.wait()
        await self._front_ends_gone(self.settings.drain_seconds
                                    + self.settings.shutdown_timeout_s + 1.0)
        await self._shutdown(tasks)
        return 0

    async def _front_ends_gone(self, timeout_s: float) -> None:
        """SIGTERM can reach every process at once (a process group, systemd's default):
        the front ends drain first, and their requests are answered until they leave."""
        deadline = time.monotonic() + timeout_s
        while self.frontends and time.monotonic() < deadline and not self._orphaned():
            await asyncio.sleep(0.05)

    def _orphaned(self) -> bool:
        return os.getppid() != self._parent

    async def _load(self) -> None:
        await self.registry.load()
        await self.control.start()  # polls when repository_poll_s > 0

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        log.info("engine stopping: draining %d front ends' requests",
                 sum(len(fe.tasks) for fe in self.frontends.values()))
        await self.control.close()
        timeout = max(0.5, self.settings.shutdown_timeout_s)
        await self.registry.close(drain_timeout_s=timeout)
        pending = [t for fe in self.frontends.values() for t in fe.tasks.values()]
        if pending:  # each answers (its batcher closed), then the messages go out
            await asyncio.wait(pending, timeout=1.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert self._reader is not None
        self._reader.close()
        self._context.term()
        log.info("engine stopped")

    async def _tick(self) -> None:
        last_ping = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            self.publish()
            if time.monotonic() - last_ping >= wire.PING_S:
                last_ping = time.monotonic()
                for identity in list(self.frontends):
                    self._send(identity, wire.PING, b"")
                if self._orphaned():
                    log.warning("engine: the process that started it is gone; stopping")
                    self._stop.set()

    # Model tables -----------------------------------------------------------------------
    def publish(self) -> None:
        """Send the model table to every front end if it changed."""
        if self.table.changed():
            message = wire.pack(self.table.message())
            for identity in list(self.frontends):
                self._send(identity, wire.STATE, message)

    async def publish_and_wait(self) -> None:
        """Publish, then wait (bounded) until every front end acknowledged the table."""
        self.publish()
        generation = self.table.generation
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while late := [fe for fe in self.frontends.values() if fe.acked < generation]:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("front ends %s did not acknowledge model table %d within %.0f s",
                            [fe.pid for fe in late], generation, ACK_TIMEOUT_S)
                return
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), left)

    # Messages ---------------------------------------------------------------------------
    def _on_message(self, message: list[Any]) -> None:
        identity, kind, header, *frames = message
        self._dispatch(identity.bytes, kind.bytes, header.buffer, frames)

    def _dispatch(self, identity: bytes, kind: bytes, header: Any, frames: list[Any]) -> None:
        fe = self.frontends.get(identity)
        if kind == wire.INFER:
            rid, instance, deadline, tensors = wire.unpack(header)
            if fe is None:  # sent before its hello after a reconnection: it says hello next
                gone = EngineUnavailable("the engine restarted; retry shortly")
                self._send(identity, wire.ERROR, wire.pack([rid, wire.error_fields(gone)]))
                return
            fe.tasks[rid] = asyncio.create_task(
                self._serve(fe, rid, instance, deadline, tensors, frames))
        elif kind == wire.CANCEL:
            task = fe.tasks.get(wire.unpack(header)[0]) if fe is not None else None
            if task is not None:
                task.cancel()
        elif kind == wire.ACK and fe is not None:
            fe.acked = max(fe.acked, wire.unpack(header)[0])
            self._acked.set()
        elif kind == wire.HELLO:
            self._hello(identity, wire.unpack(header))
        elif kind == wire.CONTROL and fe is not None:
            cid, op, model = wire.unpack(header)
            task = asyncio.create_task(self._control(identity, cid, op, model))
            self._controls.add(task)
            task.add_done_callback(self._controls.discard)
        elif kind == wire.BYE:
            self._forget(identity, "said goodbye")

    def _hello(self, identity: bytes, hello: dict[str, Any]) -> None:
        self._forget(identity, "connected again")
        arena = None
        if hello.get("arena"):
            try:
                arena = MappedArena(hello["arena"], hello["arena_bytes"])
            except (OSError, ValueError) as exc:
                log.warning("engine: cannot map the shared memory of front end %s: %s",
                            hello.get("pid"), exc)
        self.frontends[identity] = FrontEnd(identity, int(hello.get("pid", 0)), arena)
        self._send(identity, wire.WELCOME, wire.pack({"arena": arena is not None}))
        self.publish()  # others hear of any change; this one gets the table below
        self._send(identity, wire.STATE, wire.pack(self.table.message()))
        log.info("engine: front end %s connected (%d connected)", hello.get("pid"),
                 len(self.frontends))

    def _forget(self, identity: bytes, why: str) -> None:
        """The front end is gone: its requests leave the queues (nobody awaits them)."""
        fe = self.frontends.pop(identity, None)
        if fe is None:
            return
        for task in fe.tasks.values():
            task.cancel()
        if fe.tasks:
            self.abandoned.inc(len(fe.tasks))
        log.info("engine: front end %d %s; %d of its requests dropped", fe.pid, why,
                 len(fe.tasks))
        self._acked.set()  # a barrier waiting for it waits no more

    def _send(self, identity: bytes, kind: bytes, header: bytes,
              frames: Sequence[Any] = ()) -> None:
        assert self._reader is not None
        error = self._reader.send([identity, kind, header], frames)
        if isinstance(error, zmq.ZMQError) and error.errno == zmq.EHOSTUNREACH:
            self._forget(identity, "went away")
        elif error is not None:
            log.warning("engine: cannot answer front end: %s", error)

    # Work -------------------------------------------------------------------------------
    async def _serve(self, fe: FrontEnd, rid: int, instance: int, deadline: float | None,
                     tensors: list[Any], frames: list[Any]) -> None:
        """One request: its one answer, RESULT or ERROR (the front end frees its bytes)."""
        try:
            served = self.table.instance(instance)
            if served is None:
                raise ModelNotReady("this copy of the model was unloaded")
            inputs = wire.read_tensors(tensors, iter(frames), fe.arena)
            outputs = await served.infer(inputs, deadline=deadline)
        except asyncio.CancelledError:
            error: ServingError = ModelNotReady("the request was cancelled")
        except ServingError as exc:
            error = exc
        except Exception as exc:  # our bug or the runtime's: this request fails alone
            log.exception("engine: request failed")
            error = InferenceFailed("inference failed", detail=f"{type(exc).__name__}: {exc}")
        else:
            described, out = wire.inline_tensors(outputs)
            fe.tasks.pop(rid, None)
            if self.frontends.get(fe.identity) is fe:
                self._send(fe.identity, wire.RESULT, wire.pack([rid, described]), out)
            return
        fe.tasks.pop(rid, None)
        if self.frontends.get(fe.identity) is fe:  # else nobody is waiting for it
            self._send(fe.identity, wire.ERROR, wire.pack([rid, wire.error_fields(error)]))

    async def _control(self, identity: bytes, cid: int, op: str, model: str) -> None:
        placed = self.registry.places(model)
        error = None
        if placed:
            try:
                if op == "load":
                    await self.control.load_model(model)
                elif op == "unload":
                    await self.control.unload_model(model)
                else:
                    raise InvalidInput(f"unknown repository operation {op!r}")
            except ServingError as exc:
                error = wire.error_fields(exc)
            except Exception as exc:
                log.exception("engine: %s %s failed", op, model)
                error = wire.error_fields(InferenceFailed(f"{op} of {model!r} failed",
                                                          detail=str(exc)))
            await self.publish_and_wait()
        if identity in self.frontends:
            self._send(identity, wire.DONE, wire.pack([cid, error, placed]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.engine",
                                     description="one engine process (settings as JSON on stdin)")
    parser.add_argument("--address", required=True, help="ipc:// address to bind")
    parser.add_argument("--device", default="cpu", help="the device label (placement)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor orders the shutdown
    settings = Settings.model_validate_json(sys.stdin.read())
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s [%(process)d engine] %(name)s: "
                               "%(message)s")
    from serving.server import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(Engine(settings, args.address, args.device).run())
    finally:
        loop.close()
