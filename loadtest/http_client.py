"""A lean closed-loop HTTP/1.1 load client for the benchmark (asyncio + uvloop).

N keep-alive connections, each sending prepared request bytes back to back and reading
each answer by its Content-Length (the servers under test never chunk a JSON answer
of known size; chunked answers are read too). Latencies are kept for the requests
that complete inside the measured window, after a warm-up. Cheap enough per request
that one core drives several thousand requests/s, so the client is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtest.bodies import Body


@dataclass
class Measurement:
    """What one closed-loop run saw inside its window."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    window_s: float = 0.0
    first_body: bytes = b""
    completed: int = 0  # answered requests, warm-up included (server CPU is counted for all)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(message)


def encode_request(host: str, body: Body | None, path: str = "") -> bytes:
    """A raw HTTP/1.1 request: POST of ``body``, or GET of ``path`` when body is None."""
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    head = (f"POST {body.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {body.content_type}"
            f"\r\nContent-Length: {len(body.data)}\r\n\r\n")
    return head.encode() + body.data


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, b"".join(parts)


async def _connection(port: int, requests: Sequence[bytes], start_ns: int, stop_ns: int,
                      result: Measurement) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in itertools.cycle(requests):
            sent = time.perf_counter_ns()
            if sent >= stop_ns:
                return
            writer.write(request)
            status, body = await _read_response(reader)
            done = time.perf_counter_ns()
            result.completed += 1
            if status != 200:
                result.error(f"HTTP {status}: {body[:200]!r}")
            elif start_ns <= done <= stop_ns:
                result.latencies_ns.append(done - sent)
            if not result.first_body and status == 200:
                result.first_body = body
    finally:
        writer.close()


async def run_closed_loop(port: int, requests: Sequence[bytes], *, concurrency: int,
                          duration_s: float, warmup_s: float = 0.5) -> Measurement:
    """``concurrency`` connections for ``warmup_s + duration_s``; returns the window."""
    result = Measurement(window_s=duration_s)
    now = time.perf_counter_ns()
    start_ns = now + int(warmup_s * 1e9)
    stop_ns = start_ns + int(duration_s * 1e9)
    # Stagger the request cycle per connection so they do not all send the same item.
    tasks = [_connection(port, list(requests[i % len(requests):]) + list(
        requests[:i % len(requests)]), start_ns, stop_ns, result) for i in range(concurrency)]
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                      timeout=warmup_s + duration_s + 30)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.error(f"connection failed: {outcome!r}")
    return result
