"""MODELSERVE_HTTP_SERVER=granian keeps the REST limits granian can hold
(serving/rest/granian_server.py): the request line and headers bounded in bytes and in
time, while bodies far larger than that header buffer still arrive whole."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

LIMITS = {"http_server": "granian", "max_header_bytes": 16 * 1024, "header_timeout_s": 1.0}


async def test_headers_past_the_limit_are_refused_and_large_bodies_pass(
        protocol_server_for: Callable[..., Any]) -> None:
    server = protocol_server_for(**LIMITS)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        refused = await client.get("/v2/health/live", headers={"x-pad": "a" * 20_000})
        assert refused.status_code == 431
        rows = [[0.123456789] * 784 for _ in range(8)]  # about 80 KB of JSON
        answer = await client.post("/v1/models/digit:predict", json={"instances": rows})
        assert answer.status_code == 200
        assert len(answer.json()["predictions"]) == 8
        assert (await client.get("/v2/health/live")).status_code == 200


async def test_a_client_that_never_finishes_its_headers_is_cut_off(
        protocol_server_for: Callable[..., Any]) -> None:
    server = protocol_server_for(**LIMITS)
    host, port = server.url.removeprefix("http://").split(":")

    def slow_client() -> tuple[bytes, float]:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # never ends
            start = time.monotonic()
            received = b""
            while chunk := sock.recv(4096):  # until the server closes (or 10 s)
                received += chunk
            return received, time.monotonic() - start

    received, waited = await asyncio.to_thread(slow_client)
    assert waited < 5.0, waited
    assert b"200 OK" not in received
