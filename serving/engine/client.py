"""A front end's connection to one engine: requests out, answers and model states in.

``EngineLink.submit`` is the inference backend of every version the engine serves: it
places the request's tensors in the arena (or frames), sends them, and awaits the one
answer the engine owes each request. A caller that goes away (a client disconnect, a
deadline) sends CANCEL, so its item leaves the engine's queue; the arena bytes are only
reused once the engine has answered. ZeroMQ reconnects by itself; a socket monitor
tells this link when the engine went away (every request in flight is answered
EngineUnavailable at once, and new ones too, until it is back) and when it is back
(HELLO with a fresh arena, then its model states arrive).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import parse_monitor_message

from serving.engine import wire
from serving.engine.arena import Arena, Placed
from serving.engine.sockets import SocketReader
from serving.errors import DeadlineExceeded, EngineUnavailable, ServingError

log = logging.getLogger(__name__)

# If the engine owes an answer this long past a request's deadline (it answers 504 at
# the deadline itself), it is stuck: the front end answers 504 without it.
DEADLINE_GRACE_S = 1.0
StateHandler = Callable[["EngineLink", dict[str, Any] | None], Awaitable[None]]
_CONNECTED, _DISCONNECTED = b"connected", b"disconnected"  # socket monitor events


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[dict[str, np.ndarray]]
    block: tuple[int, int] | None
    timer: asyncio.TimerHandle | None = None


class EngineLink:
    """One DEALER socket to one engine; ``on_state(link, state)`` gets each model table
    (None when the engine went away) before this link answers anything after it."""

    def __init__(self, index: int, address: str, *, arena_bytes: int,
                 on_state: StateHandler) -> None:
        self.index = index
        self.address = address
        self.arena_bytes = arena_bytes
        self.on_state = on_state
        self.up = False  # connected and welcomed
        self.ready = False  # the engine finished its first load
        self.generation = 0
        self.pending: dict[int, _Pending] = {}
        self.controls: dict[int, asyncio.Future[bool]] = {}
        self._ids = itertools.count(1)
        self._arena: Arena | None = None
        self._context = zmq.Context()
        self._data: SocketReader | None = None
        self._monitor: SocketReader | None = None
        # Tables, control answers and connection events, handled one at a time in order.
        self._events: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._welcomed = asyncio.Event()
        self._closing = False

    # Lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, f"fe-{os.getpid()}-{id(self):x}".encode())
        sock.setsockopt(zmq.IMMEDIATE, 1)  # no queueing for an engine that is not there
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED
                                          | zmq.EVENT_DISCONNECTED)
        sock.connect(self.address)
        self._task = asyncio.create_task(self._handle_events(), name=f"engine-{self.index}")
        self._monitor = SocketReader(monitor, self._on_monitor)
        self._data = SocketReader(sock, self._on_message)

    async def wait_welcomed(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._welcomed.wait()
        return self.up

    async def close(self) -> None:
        self._closing = True
        if self.up:
            self._send([wire.BYE, b""])
        await self._went_down("this front end is closing")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._data is not None:
            self._data.sock.disable_monitor()
            self._data.close()
        if self._monitor is not None:
            self._monitor.close()
        self._context.term()

    # Requests -------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self.pending)

    async def submit(self, instance: int, inputs: dict[str, np.ndarray], *,
                     deadline: float | None) -> dict[str, np.ndarray]:
        if not self.up:
            raise EngineUnavailable(f"engine {self.index} is not running; retry shortly")
        placed = self._arena.place(inputs) if self._arena is not None else \
            Placed(*wire.inline_tensors(inputs))
        rid = next(self._ids)
        loop = asyncio.get_running_loop()
        item = self.pending[rid] = _Pending(loop.create_future(), placed.block)
        header = wire.pack([rid, instance, deadline, placed.tensors])
        if not self._send([wire.INFER, header], placed.frames):
            self._settle(rid)
            raise EngineUnavailable(f"engine {self.index} is not running; retry shortly")
        if deadline is not None:
            item.timer = loop.call_at(_loop_time(loop, deadline + DEADLINE_GRACE_S),
                                      self._overdue, rid)
        try:
            return await item.future
        except asyncio.CancelledError:
            if rid in self.pending:  # still owed: the engine drops it from its queue
                self._send([wire.CANCEL, wire.pack([rid])])
            raise

    async def control(self, op: str, model: str) -> bool:
        """Load or unload ``model`` in the engine (its RepositoryControl); raises its error.
        False when the model is not placed on this engine (nothing done)."""
        if not self.up:
            raise EngineUnavailable(f"engine {self.index} is not running; retry shortly")
        cid = next(self._ids)
        future = self.controls[cid] = asyncio.get_running_loop().create_future()
        try:
            if not self._send([wire.CONTROL, wire.pack([cid, op, model])]):
                raise EngineUnavailable(f"engine {self.index} is not running; retry shortly")
            return await future
        finally:
            self.controls.pop(cid, None)

    def _overdue(self, rid: int) -> None:
        item = self.pending.get(rid)
        if item is not None and not item.future.done():
            item.future.set_exception(DeadlineExceeded(
                f"engine {self.index} did not answer by the request's deadline"))
            self._send([wire.CANCEL, wire.pack([rid])])

    def _settle(self, rid: int) -> _Pending | None:
        """The engine answered ``rid`` (or never will): its arena bytes are free again."""
        item = self.pending.pop(rid, None)
        if item is None:
            return None
        if item.timer is not None:
            item.timer.cancel()
        if item.block is not None and self._arena is not None:
            self._arena.free(*item.block)
        return item

    def _send(self, parts: list[Any], frames: list[Any] | None = None) -> bool:
        if self._data is None:
            return False
        error = self._data.send(parts, frames or ())
        if error is not None:
            log.debug("engine %d: send failed: %s", self.index, error)
        return error is None

    # Messages -------------------------------------------------------------------------
    def _on_message(self, message: list[Any]) -> None:
        """Answers are settled at once; everything else is handled in order."""
        kind, header, *frames = message
        if kind.bytes == wire.RESULT:
            rid, tensors = wire.unpack(header.buffer)
            item = self._settle(rid)
            if item is not None and not item.future.done():
                item.future.set_result(wire.read_tensors(tensors, iter(frames)))
        elif kind.bytes == wire.ERROR:
            rid, fields = wire.unpack(header.buffer)
            item = self._settle(rid)
            if item is not None and not item.future.done():
                item.future.set_exception(wire.error_from(fields))
        elif kind.bytes != wire.PING:
            self._events.put_nowait((kind.bytes, wire.unpack(header.buffer)))

    def _on_monitor(self, message: list[Any]) -> None:
        event = parse_monitor_message([frame.bytes for frame in message])["event"]
        self._events.put_nowait((_CONNECTED if event == zmq.EVENT_HANDSHAKE_SUCCEEDED
                                 else _DISCONNECTED, None))

    async def _handle_events(self) -> None:
        while True:
            kind, body = await self._events.get()
            try:
                await self._handle_event(kind, body)
            except Exception:  # one bad message must not stop the link
                log.exception("engine %d: could not handle a %r message", self.index, kind)

    async def _handle_event(self, kind: bytes, body: Any) -> None:
        if kind == wire.STATE:
            await self.on_state(self, body)  # the table is in place before "ready" shows
            self.ready = bool(body["ready"])
            self.generation = body["generation"]
            self._send([wire.ACK, wire.pack([self.generation])])
        elif kind == wire.DONE:
            cid, fields, placed = body
            future = self.controls.get(cid)
            if future is not None and not future.done():
                if fields is None:
                    future.set_result(bool(placed))
                else:
                    future.set_exception(wire.error_from(fields))
        elif kind == wire.WELCOME:
            self._welcome(body)
        elif kind == _CONNECTED and not self._closing:
            self._hello()
        elif kind == _DISCONNECTED:
            await self._went_down(f"engine {self.index} went away; retry shortly")

    def _welcome(self, answer: dict[str, Any]) -> None:
        if self._arena is not None:
            self._arena.unlink()  # mapped by the engine (or refused): the name is not needed
            if not answer.get("arena"):
                log.warning("engine %d could not map this front end's shared memory; "
                            "tensors travel in messages", self.index)
                self._arena.close()
                self._arena = None
        self.up = True
        self._welcomed.set()
        log.info("engine %d at %s: connected", self.index, self.address)

    # Connection -----------------------------------------------------------------------
    def _hello(self) -> None:
        if self._arena is not None:
            self._arena.close()
        self._arena = None
        if self.arena_bytes > 0:
            try:
                self._arena = Arena(self.arena_bytes)
            except OSError as exc:
                log.warning("no shared memory for engine %d (%s): tensors travel in messages",
                            self.index, exc)
        hello = {"pid": os.getpid(), "arena": self._arena.path if self._arena else None,
                 "arena_bytes": self.arena_bytes if self._arena else 0}
        self._send([wire.HELLO, wire.pack(hello)])

    async def _went_down(self, reason: str) -> None:
        """Answer everything in flight at once; the models of this engine stop serving."""
        was_up, self.up, self.ready = self.up, False, False
        self._welcomed.clear()
        error: ServingError = EngineUnavailable(reason)
        for rid in list(self.pending):
            item = self._settle(rid)
            if item is not None and not item.future.done():
                item.future.set_exception(error)
        for future in self.controls.values():
            if not future.done():
                future.set_exception(error)
        if self._arena is not None:
            self._arena.close()
            self._arena = None
        if was_up:
            if not self._closing:
                log.warning("engine %d at %s: disconnected", self.index, self.address)
            await self.on_state(self, None)


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic: float) -> float:
    """A time.monotonic() instant on the loop's clock (the same clock, save for uvloop)."""
    return loop.time() + (monotonic - time.monotonic())
