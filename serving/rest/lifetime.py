"""A REST request's lifetime: its deadline clock starts at arrival, and it ends when
its client leaves.

Arrival: ``request.state.arrived`` (time.monotonic()) is stamped before the body is
read, so ``Request-Timeout`` and the server's timeout count upload and decoding too.

Disconnects: uvicorn only marks a lost connection; the handler would keep waiting in the batch
queue and the model would compute an answer nobody reads. This middleware, once
the whole body has been read, listens for ``http.disconnect`` and cancels the
handler task: the batcher then drops the queued item before it uses compute.

Cheap for the common case: the listener starts only if no answer has begun
``grace_s`` after the body was read (a timer handle, no task, for fast requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class _Watch:
    """One request: its receive/send wrappers and the disconnect listener."""

    def __init__(self, receive: Receive, task: asyncio.Task[object], grace_s: float) -> None:
        self._receive = receive
        self._task = task
        self._grace_s = grace_s
        self._timer: asyncio.TimerHandle | None = None
        self._listener: asyncio.Task[None] | None = None
        self.answered = False
        self.disconnected = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        elif not message.get("more_body", False) and self._timer is None and not self.answered:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._grace_s, self._listen)
        return message

    def sender(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answered = True
                self.stop()
            await send(message)
        return wrapped

    def _listen(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._wait_disconnect())

    async def _wait_disconnect(self) -> None:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.answered:
            self.disconnected = True
            self._task.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._listener is not None and self._listener is not asyncio.current_task():
            self._listener.cancel()


class RequestLifetimeMiddleware:
    def __init__(self, app: ASGIApp, *, grace_s: float = 0.05) -> None:
        self.app = app
        self.grace_s = grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived"] = time.monotonic()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        watch = _Watch(receive, task, self.grace_s)
        try:
            await self.app(scope, watch.receive, watch.sender(send))
        except asyncio.CancelledError:
            if not watch.disconnected or _still_cancelled(task):
                raise
            logger.debug("%s %s: client disconnected; request dropped", scope.get("method"),
                         scope.get("path"))
        finally:
            watch.stop()


def _still_cancelled(task: asyncio.Task[object]) -> bool:
    """True when someone else (a shutdown) cancelled the task too."""
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+
    if uncancel is None:
        return False
    with contextlib.suppress(RuntimeError):
        return bool(uncancel() > 0)
    return False
