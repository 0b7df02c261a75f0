"""The task routes answered by the HTTP protocol itself (serving/rest/hot_protocol.py),
over a real server on 127.0.0.1: HTTP/1.1 behaviour uvicorn gives every other route
(pipelining, keep-alive, chunked bodies, 100-continue), and the gateway's rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from serving.server import ServerProcess
from tests.fixtures.servers import bound_socket, server_settings, wait_ready
from tests.fixtures.tiny_models import digit_reference

PIXELS = np.random.default_rng(11).random((4, 784), dtype=np.float32)


@pytest.fixture
async def start(tiny_model_repository: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await start(**settings)`` → (host, port) of a real server with those settings."""
    running: list[tuple[ServerProcess, asyncio.Task[int], Any]] = []

    async def make(**overrides: Any) -> tuple[str, int]:
        sock = bound_socket()
        port = sock.getsockname()[1]
        server = ServerProcess(server_settings(tiny_model_repository, http_port=port,
                                               **overrides), sockets=[sock])
        running.append((server, asyncio.create_task(
            server.run(install_signal_handlers=False)), sock))
        await wait_ready(f"http://127.0.0.1:{port}")
        return "127.0.0.1", port

    yield make
    for server, task, sock in running:
        server.request_stop()
        await asyncio.wait_for(task, timeout=15)
        sock.close()


def digit_request(i: int, extra_headers: str = "") -> bytes:
    body = orjson.dumps({"input": PIXELS[i].tolist()})
    return (f"POST /v1/digit:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra_headers}\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def top_label(body: bytes) -> str:
    return orjson.loads(body)["predictions"][0]["label"]


def expected_label(i: int) -> str:
    return str(int(np.argmax(digit_reference(PIXELS[i:i + 1])[0])))


async def test_pipelined_requests_are_answered_in_order(start) -> None:
    host, port = await start()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"".join(digit_request(i) for i in range(4)))  # one write, four requests
    answers = [await read_response(reader) for _ in range(4)]
    writer.close()
    assert [status for status, _, _ in answers] == [200] * 4
    assert [top_label(body) for _, _, body in answers] == [expected_label(i) for i in range(4)]


async def test_keep_alive_and_connection_close(start) -> None:
    host, port = await start()
    reader, writer = await asyncio.open_connection(host, port)
    for i in range(3):
        writer.write(digit_request(i))
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers.get("connection") != "close"
    writer.write(digit_request(0, "Connection: close\r\n"))
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed it
    writer.close()


async def test_chunked_body_is_read_and_limited(start) -> None:
    host, port = await start(max_request_bytes=4096)
    body = orjson.dumps({"input": PIXELS[1].tolist()})
    assert len(body) > 4096
    small = orjson.dumps({"input": (PIXELS[1] > 0.5).astype(int).tolist()})
    assert len(small) < 4096

    def chunked(payload: bytes) -> bytes:
        parts = [payload[i:i + 1000] for i in range(0, len(payload), 1000)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return (b"POST /v1/digit:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)

    reader, writer = await asyncio.open_connection(host, port)
    writer.write(chunked(small))
    status, _, answer = await read_response(reader)
    assert status == 200, answer
    writer.close()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(chunked(body))
    status, _, answer = await read_response(reader)
    assert status == 413 and b"limit of 4096 bytes" in answer
    writer.close()


async def test_expect_100_continue(start) -> None:
    host, port = await start()
    reader, writer = await asyncio.open_connection(host, port)
    request = digit_request(2, "Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    writer.write(head + b"\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(body)
    status, _, answer = await read_response(reader)
    assert status == 200 and top_label(answer) == expected_label(2)
    writer.close()


async def test_api_keys_and_declared_size_are_checked_before_the_body(start) -> None:
    host, port = await start(api_keys=["s3cret"], max_request_bytes=4096)
    url = f"http://{host}:{port}"
    payload = {"input": (PIXELS[0] > 0.5).astype(int).tolist()}
    async with httpx.AsyncClient(base_url=url) as client:
        refused = await client.post("/v1/digit:predict", json=payload)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json() == {"error": "missing or invalid API key"}
        ok = await client.post("/v1/digit:predict", json=payload,
                               headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        too_big = await client.post("/v1/digit:predict", json={"input": PIXELS[0].tolist()},
                                    headers={"X-API-Key": "s3cret"})
        assert too_big.status_code == 413


async def test_errors_have_the_apps_shape_and_the_connection_stays_usable(start) -> None:
    host, port = await start()
    reader, writer = await asyncio.open_connection(host, port)
    bad = b'{"input": [1, 2'
    writer.write(b"POST /v1/digit:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(bad), bad))
    status, headers, answer = await read_response(reader)
    assert status == 400 and headers["content-type"] == "application/json"
    assert orjson.loads(answer)["error"].startswith("malformed JSON")
    writer.write(digit_request(3))
    status, _, answer = await read_response(reader)
    assert status == 200 and top_label(answer) == expected_label(3)
    writer.close()


async def test_cors_requests_get_cors_headers(start) -> None:
    host, port = await start(cors_origins=["https://app.example"])
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        resp = await client.post("/v1/digit:predict", json={"input": PIXELS[0].tolist()},
                                 headers={"Origin": "https://app.example"})
        plain = await client.post("/v1/digit:predict", json={"input": PIXELS[0].tolist()})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    assert plain.status_code == 200 and resp.json() == plain.json()
