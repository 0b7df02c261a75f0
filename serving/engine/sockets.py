"""ZeroMQ sockets on the running asyncio loop, the way pyzmq documents for event loops.

A socket's ``zmq.FD`` becomes readable when the socket's state *changed*, not while a
message waits (edge-triggered), so ``SocketReader`` reads every waiting message when it
fires (``zmq.EVENTS`` says whether one waits), and again after any send (a send can
consume the notification). Messages go to a plain callback, without a future per
message: pyzmq's own asyncio sockets cost about 0.5 ms per round trip on a busy
two-core machine, this about 0.08 ms (the benchmark in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from serving.engine.wire import send_copy

log = logging.getLogger(__name__)
BURST = 256  # messages read per turn of the loop before others get their turn
Handler = Callable[[list[Any]], None]


class SocketReader:
    """Calls ``handle(frames)`` on the running loop for every message ``sock`` receives."""

    def __init__(self, sock: zmq.Socket[Any], handle: Handler) -> None:
        self.sock = sock
        self.handle = handle
        self._loop = asyncio.get_running_loop()
        self._fd = int(sock.getsockopt(zmq.FD))
        self._scheduled = False
        self._loop.add_reader(self._fd, self._drain)
        self.poke()

    def poke(self) -> None:
        """Look for waiting messages soon (after a send, which can hide them)."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        sock = self.sock
        for _ in range(BURST):
            if sock.closed or not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            try:
                self.handle(frames)
            except Exception:  # one bad message must not stop the reader
                log.exception("could not handle a message")
        self.poke()  # more are waiting: after the others' turn

    def send(self, parts: Sequence[Any], frames: Sequence[Any] = ()) -> zmq.ZMQError | None:
        """Send without waiting; the error if it could not be sent (EHOSTUNREACH: the peer
        has gone; EAGAIN: no peer connected)."""
        try:
            self.sock.send_multipart([*parts, *frames], flags=zmq.NOBLOCK,
                                     copy=send_copy(frames))
        except zmq.ZMQError as exc:
            return exc
        finally:
            self.poke()
        return None

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self.sock.close(linger=0)
