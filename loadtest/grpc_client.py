"""Closed-loop gRPC load for the benchmark: one grpc.aio channel, N concurrent streams.

Requests are serialized once up front and answers kept as bytes (identity
serializers), so the client spends its CPU on the transport, not on protobuf. The
first answer is parsed and checked (one result per item) before the numbers count.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

import grpc

from loadtest.grpc_messages import GrpcCall, check_response
from loadtest.http_client import Measurement


def _identity(data: bytes) -> bytes:
    return data


async def _stream(call, requests: Sequence[bytes], start_ns: int, stop_ns: int,
                  result: Measurement) -> None:
    for request in itertools.cycle(requests):
        sent = time.perf_counter_ns()
        if sent >= stop_ns:
            return
        try:
            answer = await call(request, timeout=30.0)
        except grpc.aio.AioRpcError as exc:
            result.error(f"{exc.code().name}: {exc.details()}")
            continue
        done = time.perf_counter_ns()
        if start_ns <= done <= stop_ns:
            result.latencies_ns.append(done - sent)
        if not result.first_body:
            result.first_body = answer


async def run_closed_loop(target: str, calls: Sequence[GrpcCall], *, concurrency: int,
                          duration_s: float, warmup_s: float = 0.5) -> Measurement:
    """``concurrency`` concurrent unary calls in a loop over one channel (HTTP/2 streams)."""
    result = Measurement(window_s=duration_s)
    requests = [c.request.SerializeToString() for c in calls]
    options = [("grpc.max_send_message_length", 64 << 20),
               ("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(calls[0].method, request_serializer=_identity,
                                   response_deserializer=_identity)
        check = check_response(calls[0], calls[0].response_type.FromString(
            await call(requests[0], timeout=30.0)))
        if check:
            result.error(check)
            return result
        now = time.perf_counter_ns()
        start_ns = now + int(warmup_s * 1e9)
        stop_ns = start_ns + int(duration_s * 1e9)
        tasks = [_stream(call, requests[i % len(requests):] + requests[:i % len(requests)],
                         start_ns, stop_ns, result) for i in range(concurrency)]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=warmup_s + duration_s + 30)
    return result
