"""granian (a Rust HTTP server) serving the REST app inside the serving process's loop.

granian parses HTTP and manages connections in Rust (hyper and tokio, on its own
thread) and calls the app once per request: no Python per header or per chunk. It is an
opt-in (MODELSERVE_HTTP_SERVER=granian): measured beside uvicorn it cost about the same
CPU per request, so uvicorn stays the default (docs/benchmarks.md). It runs as granian's
embedded server, in the event loop that also runs grpc.aio, on the REST socket the process bound
(serving/server_cli.py binds it before any model loads, so a taken port fails at once
and workers can share it).

``GranianServer`` offers what serving/server.py uses of ``uvicorn.Server`` (``serve``,
``started``, ``should_exit``, ``force_exit``), so the process lifecycle stays one piece
of code for both servers.

Serving a socket bound by the caller uses one private piece of granian: the embedded
server's ``_init_shared_socket`` hook and its socket holder. pyproject.toml caps
granian's version and tests/integration/rest/test_granian_private_api.py fails when
they move.
"""

from __future__ import annotations

import logging
import math
import socket
from typing import Any

from granian._granian import SocketHolder
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

from serving.config import Settings

logger = logging.getLogger(__name__)
BACKLOG = 2048  # serving/workers.py bind_socket listens with this
MIN_READ_BUFFER = 8192  # hyper refuses a smaller read buffer


class _EmbeddedOnSocket(Server):
    """granian's embedded server, listening on a socket bound by the caller."""

    def __init__(self, target: Any, sock: socket.socket, **options: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(target, address=host, port=port, **options)
        self._given = sock

    def _init_shared_socket(self) -> None:
        # The holder borrows the descriptor (it never closes it): the socket stays ours,
        # closed by ServerProcess on shutdown; granian's workers listen on their own dups.
        make: Any = SocketHolder  # its stub omits the (fd, is_unix, backlog) constructor
        holder = make(self._given.fileno(), False, BACKLOG)
        self._shd, self._sfd, self._ssp = holder, holder.get_fd(), None


class GranianServer:
    """What ServerProcess needs of an HTTP server, on granian."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.started = False
        self._server: _EmbeddedOnSocket | None = None
        self._should_exit = False
        self._force_exit = False

    def _options(self) -> dict[str, Any]:
        # The REST connection limits uvicorn's protocol enforces (connection_limits.py),
        # as far as granian can hold them: the request line and headers bounded in bytes
        # (431) and in time, and the requests in progress bounded (granian stops reading
        # new requests past it, where uvicorn's protocol answers 503).
        http1 = HTTP1Settings(
            header_read_timeout=math.ceil(self.settings.header_timeout_s * 1000),
            max_buffer_size=max(MIN_READ_BUFFER, self.settings.max_header_bytes))
        return {"interface": Interfaces.ASGINL, "runtime_threads": 1, "websockets": False,
                "log_enabled": False, "log_access": self.settings.access_log,
                "backpressure": self.settings.max_connections, "http1_settings": http1}

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets:
            sock = sockets[0]
        else:  # the caller bound nothing: bind as serving/workers.py does
            from serving.workers import bind_socket

            sock = bind_socket(self.settings.host, self.settings.http_port)
        self._server = _EmbeddedOnSocket(self.app, sock, **self._options())
        if self._should_exit:
            return
        self.started = True
        await self._server.serve()

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        """Stop accepting; requests in progress finish (granian drains its connections)."""
        self._should_exit = value
        if value and self._server is not None:
            self._server.stop()

    @property
    def force_exit(self) -> bool:
        return self._force_exit

    @force_exit.setter
    def force_exit(self, value: bool) -> None:
        self._force_exit = value
        if value and self._server is not None:
            self._server.stop()
            for worker in self._server.wrks:
                worker.kill()
