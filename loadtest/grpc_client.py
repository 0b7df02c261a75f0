"""Closed-loop gRPC load for the benchmark: one grpc.aio channel, N concurrent streams.

Unary methods: N concurrent calls in a loop (each an HTTP/2 stream). Bidirectional
streaming (ModelStreamInfer): N long-lived streams, each sending one request and
waiting for its answer before the next (ping-pong), so both modes keep N requests
in flight.

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
        result.completed += 1
        if start_ns <= done <= stop_ns:
            result.latencies_ns.append(done - sent)
        if not result.first_body:
            result.first_body = answer


async def _ping_pong(open_stream, requests: Sequence[bytes], start_ns: int, stop_ns: int,
                     result: Measurement) -> None:
    """One bidirectional stream: write a request, read its answer, repeat."""
    stream = open_stream(timeout=stop_ns / 1e9 - time.perf_counter_ns() / 1e9 + 30.0)
    try:
        for request in itertools.cycle(requests):
            sent = time.perf_counter_ns()
            if sent >= stop_ns:
                break
            await stream.write(request)
            answer = await stream.read()
            done = time.perf_counter_ns()
            if answer is grpc.aio.EOF:
                result.error("the server closed the stream")
                return
            result.completed += 1
            if start_ns <= done <= stop_ns:
                result.latencies_ns.append(done - sent)
            if not result.first_body:
                result.first_body = answer
        await stream.done_writing()
    except grpc.aio.AioRpcError as exc:
        result.error(f"{exc.code().name}: {exc.details()}")


OPTIONS = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]


async def run_closed_loop(target: str, calls: Sequence[GrpcCall], *, concurrency: int,
                          duration_s: float, warmup_s: float = 0.5) -> Measurement:
    """``concurrency`` concurrent unary calls in a loop over one channel (HTTP/2 streams),
    or ``concurrency`` ping-pong streams when the calls are streaming ones."""
    result = Measurement(window_s=duration_s)
    requests = [c.request.SerializeToString() for c in calls]
    streaming = calls[0].kind == "grpc-stream"
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as channel:
        if streaming:
            call = channel.stream_stream(calls[0].method, request_serializer=_identity,
                                         response_deserializer=_identity)
            first = call(iter(requests[:1]), timeout=30.0)
            answer = await first.read()
            await first.code()  # the iterator ended (half-close): the server ends the call
        else:
            call = channel.unary_unary(calls[0].method, request_serializer=_identity,
                                       response_deserializer=_identity)
            answer = await call(requests[0], timeout=30.0)
        if answer is grpc.aio.EOF:
            result.error("the stream closed without an answer")
            return result
        check = check_response(calls[0], calls[0].response_type.FromString(answer))
        if check:
            result.error(check)
            return result
        now = time.perf_counter_ns()
        start_ns = now + int(warmup_s * 1e9)
        stop_ns = start_ns + int(duration_s * 1e9)
        loop = _ping_pong if streaming else _stream
        tasks = [loop(call, requests[i % len(requests):] + requests[:i % len(requests)],
                      start_ns, stop_ns, result) for i in range(concurrency)]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=warmup_s + duration_s + 30)
    return result
