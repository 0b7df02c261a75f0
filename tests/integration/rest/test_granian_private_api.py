"""granian internals the REST server relies on (serving/rest/granian_server.py).

The embedded server is made to listen on the socket the process bound: it overrides
``Server._init_shared_socket`` and fills ``_shd`` / ``_sfd`` / ``_ssp`` with a
``SocketHolder(fd, is_unix, backlog)`` that borrows our descriptor (never closes it: the
process closes its socket on shutdown); a forced exit kills ``Server.wrks``.
pyproject.toml caps granian below the next minor release; these tests fail, naming what
moved, when a release changes it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
from pathlib import Path

import httpx
from granian._granian import SocketHolder
from granian.server.common import AbstractServer
from granian.server.embed import AsyncWorker, Server

from serving.rest.granian_server import GranianServer
from serving.server import ServerProcess
from tests.fixtures.servers import bound_socket, server_settings, wait_ready


def test_the_overridden_hook_and_the_fields_it_fills_are_still_there() -> None:
    assert list(inspect.signature(Server._init_shared_socket).parameters) == ["self"]
    startup = inspect.getsource(Server.startup)
    assert "self._init_shared_socket()" in startup
    spawn = inspect.getsource(Server._spawn_worker)
    assert "(self._ssp, self._shd)" in spawn  # the worker takes the spec or the holder
    assert "(sock[0] or sock[1])" in inspect.getsource(Server._spawn_asgi_worker)
    assert {"stop", "serve"} <= set(vars(Server))
    assert callable(AsyncWorker.kill)
    assert "wrks" in inspect.getsource(AbstractServer.__init__)


def test_a_socket_holder_borrows_a_descriptor() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        make: object = SocketHolder
        holder = make(sock.fileno(), False, 8)  # type: ignore[operator]
        assert holder.get_fd() == sock.fileno() and not holder.is_uds()
        del holder
        os.fstat(sock.fileno())  # still open: ours to close


async def test_granian_serves_the_given_socket_and_leaves_it_to_us(
        tiny_model_repository: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    settings = server_settings(tiny_model_repository, http_port=port, http_server="granian")
    server = ServerProcess(settings, sockets=[sock])
    assert isinstance(server.http, GranianServer)
    task = asyncio.create_task(server.run(install_signal_handlers=False))
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post("/v1/digit:predict", json={"input": [0.5] * 784})
        assert answer.status_code == 200 and answer.json()["model_name"] == "digit"
        assert server.http.started
    finally:
        server.request_stop()
        assert await asyncio.wait_for(task, timeout=15) == 0
    assert sock.fileno() == -1  # the process closed its own copy on shutdown
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # and granian's is closed too
