"""uvicorn internals the REST hot path relies on (serving/rest/hot_protocol.py).

The hot path subclasses uvicorn's private ``HttpToolsProtocol`` and drives its
``RequestResponseCycle``; pyproject.toml caps uvicorn below the next minor release.
These tests fail, naming what moved, when a uvicorn release changes any of it:

- ``HttpToolsProtocol._start_asgi_task(cycle, app)``: called by uvicorn for every request
  it starts (pipelined ones included) and overridden; ``connection_lost(exc)`` overridden;
  ``self.app``, ``self.loop`` and ``self.tasks`` (a set of running tasks) read;
- the cycle's ``scope`` (method, path, headers, state), ``receive()``, ``send()``,
  ``response_started``, ``disconnected``, ``send_500_response()``, ``on_response`` and
  ``transport``;
- for the one-write answer (``_write_whole``, which does ``send``'s bookkeeping itself):
  ``STATUS_LINE``, the cycle's ``flow.write_paused``, ``access_log``, ``default_headers``,
  ``keep_alive``, ``waiting_for_100_continue``, ``response_complete`` and
  ``message_event``; its bytes must be exactly those ``send`` writes.

The static checks read signatures; the live ones run a real server on 127.0.0.1 and
look at the objects uvicorn hands to the hot path while it answers.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from serving.rest import hot_protocol
from serving.rest.connection_limits import ConnectionLimits
from serving.rest.hot_protocol import protocol_class
from serving.server import ServerProcess
from tests.fixtures.servers import bound_socket, server_settings, wait_ready

DIGIT = orjson.dumps({"input": [0.0] * 784})


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_overridden_and_called_methods_keep_their_signatures() -> None:
    assert _parameters(HttpToolsProtocol._start_asgi_task) == ["self", "cycle", "app"]
    assert _parameters(HttpToolsProtocol.connection_lost) == ["self", "exc"]
    for name in ("receive", "send", "send_500_response"):
        assert inspect.iscoroutinefunction(getattr(RequestResponseCycle, name)), name
    assert _parameters(RequestResponseCycle.send) == ["self", "message"]
    assert _parameters(RequestResponseCycle.send_500_response) == ["self"]


class Seen:
    """What uvicorn handed to the hot protocol, recorded while it served."""

    def __init__(self) -> None:
        self.protocols: list[HttpToolsProtocol] = []
        self.cycles: list[RequestResponseCycle] = []
        self.apps: list[Any] = []
        self.served: list[str] = []


@pytest.fixture
async def hot_server(tiny_model_repository: Path) -> AsyncIterator[tuple[str, Any, Seen]]:
    """A real server whose hot protocol records each cycle: (url, ServerProcess, Seen)."""
    seen = Seen()
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = ServerProcess(server_settings(tiny_model_repository, http_port=port),
                           sockets=[sock])
    lane = server.app.protocol_lane
    assert lane is not None
    serve = lane.serve

    async def counted(cycle: RequestResponseCycle, endpoint: Any) -> None:
        seen.served.append(cycle.scope["path"])
        await serve(cycle, endpoint)

    lane.serve = counted  # type: ignore[method-assign]

    class Recording(protocol_class(lane, ConnectionLimits(server.settings))):  # type: ignore[misc]
        def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
            seen.protocols.append(self)
            seen.cycles.append(cycle)
            seen.apps.append(app)
            super()._start_asgi_task(cycle, app)

    server.http.config.http = Recording  # loaded when uvicorn starts serving
    task = asyncio.create_task(server.run(install_signal_handlers=False))
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        yield url, server, seen
    finally:
        server.request_stop()
        await asyncio.wait_for(task, timeout=15)
        sock.close()


async def test_uvicorn_hands_each_request_to_the_hot_protocol(hot_server) -> None:
    url, _, seen = hot_server
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (b"POST /v1/digit:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n%s" % (len(DIGIT), DIGIT))
    before = len(seen.cycles)
    writer.write(request * 2)  # pipelined: uvicorn starts the second from on_response
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
    writer.close()
    assert len(seen.cycles) - before == 2  # both went through _start_asgi_task
    assert seen.served[-2:] == ["/v1/digit:predict"] * 2  # and were answered by the lane


async def test_the_attributes_the_hot_path_reads_exist(hot_server) -> None:
    url, server, seen = hot_server
    async with httpx.AsyncClient(base_url=url) as client:
        resp = await client.post("/v1/digit:predict", content=DIGIT,
                                 headers={"content-type": "application/json"})
    assert resp.status_code == 200
    protocol, cycle = seen.protocols[-1], seen.cycles[-1]
    # uvicorn passes its own app (server.app inside its proxy-headers wrapper) unless it
    # answers 503 itself; the hot path tells the two apart by identity.
    assert seen.apps[-1] is protocol.app and protocol.app.app is server.app
    assert isinstance(protocol.loop, asyncio.AbstractEventLoop)
    assert isinstance(protocol.tasks, set)
    scope = cycle.scope
    assert (scope["method"], scope["path"]) == ("POST", "/v1/digit:predict")
    assert isinstance(scope["headers"], list) and isinstance(scope["state"], dict)
    assert "arrived" in scope["state"]  # stamped by the hot lane on this very dict
    assert cycle.response_started is True and cycle.disconnected is False
    assert callable(cycle.on_response)
    assert hasattr(cycle.transport, "close") and hasattr(cycle.transport, "is_closing")
    # What _write_whole reads and sets in send's place.
    assert STATUS_LINE[200] == b"HTTP/1.1 200 OK\r\n"
    assert cycle.flow.write_paused is False and isinstance(cycle.access_log, bool)
    assert isinstance(cycle.default_headers, list) and cycle.keep_alive is True
    assert cycle.waiting_for_100_continue is False and cycle.response_complete is True
    assert isinstance(cycle.message_event, asyncio.Event) and cycle.message_event.is_set()
    assert "send" in vars(RequestResponseCycle)  # the general path it falls back to


async def test_a_failure_before_the_answer_is_uvicorns_500(hot_server) -> None:
    url, server, _ = hot_server
    lane = server.app.protocol_lane

    async def broken(cycle: RequestResponseCycle, endpoint: Any) -> None:
        raise RuntimeError("a bug in the hot path")

    lane.serve = broken
    async with httpx.AsyncClient(base_url=url) as client:
        resp = await client.post("/v1/digit:predict", content=DIGIT)
    assert resp.status_code == 500 and resp.text == "Internal Server Error"


async def test_a_failure_after_the_answer_started_closes_the_connection(hot_server) -> None:
    url, server, _ = hot_server
    lane = server.app.protocol_lane

    async def half(cycle: RequestResponseCycle, endpoint: Any) -> None:
        await cycle.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-length", b"100")]})
        raise RuntimeError("a bug after the status line went out")

    lane.serve = half
    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/v1/digit:predict", content=DIGIT)
        lane.serve = type(lane).serve.__get__(lane)  # the real one again
        ok = await client.post("/v1/digit:predict", content=DIGIT)
    assert ok.status_code == 200  # a fresh connection is served as usual


async def _exchange(url: str, requests: list[bytes]) -> list[bytes]:
    """Raw answers to ``requests`` sent one after another on one connection."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answers = []
    for request in requests:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        answers.append(head + await reader.readexactly(length))
    closed = await asyncio.wait_for(reader.read(), 10) == b"" if b"close" in requests[-1] \
        else None
    writer.close()
    answers.append(b"closed" if closed else b"open")
    return answers


def _steady(answers: list[bytes]) -> list[bytes]:
    """The answers with the values that differ from one request to the next masked: the
    clock (Date) and the stage durations (Server-Timing); their names stay compared."""
    return [re.sub(rb"(?im)^(date|server-timing): [^\r\n]*", rb"\1: <varies>", answer)
            for answer in answers]


async def test_one_write_answers_are_the_bytes_send_writes(hot_server, monkeypatch) -> None:
    url, _, _ = hot_server
    post = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: r-1\r\n%sContent-Length: %d\r\n\r\n%s")
    requests = [post % (b"/v1/digit:predict", b"", len(DIGIT), DIGIT),
                post % (b"/v1/models/digit:predict", b"", 11, b'{"bad": 1}x'),
                post % (b"/v2/models/digit/infer", b"Connection: close\r\n", 2, b"{}")]
    fast = _steady(await _exchange(url, requests))
    monkeypatch.setattr(hot_protocol, "_write_whole", lambda *args: False)
    general = _steady(await _exchange(url, requests))
    assert fast == general
    assert fast[0].startswith(b"HTTP/1.1 200") and fast[1].startswith(b"HTTP/1.1 400")
    assert b"connection: close" in fast[2] and fast[3] == b"closed"
