"""Triton's ModelStreamInfer: many inference requests on one bidirectional gRPC stream.

Semantics, as Triton serves a model that is not decoupled and as tritonclient's
``start_stream``/``async_stream_infer`` expect them:

- each ModelInferRequest read from the stream gets exactly one ModelStreamInferResponse,
  written as soon as it is ready, so answers may overtake each other; the response's
  ``infer_response.id`` is the request's ``id`` so that clients can match them;
- a request that fails gets a response with ``error_message`` (and the request's id,
  model and version in ``infer_response``), and the stream stays open for the next;
- requests of one stream compute concurrently, queued in the same batchers as every
  other request, so they are batched with each other and with REST and unary gRPC;
- back-pressure: at most ``max_in_flight`` requests of a stream, holding at most
  ``max_bytes`` of messages, are computing; past it the stream is not read until one is
  answered, so gRPC's flow control holds the client back instead of this server
  buffering without bound. A stream thus holds the one message an RPC may hold
  (``grpc_max_message_bytes``, the one read and waiting) plus ``max_bytes``, which keeps
  the gRPC memory arithmetic of docs/reliability.md (one message per concurrent RPC)
  within a small, stated margin; a request larger than ``max_bytes`` runs alone.

A client that cancels the stream, or a stream deadline that passes, cancels the
requests still computing (their batch items are dropped, not computed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from serving.errors import ServingError
from serving.grpc.generated import grpc_predict_v2_pb2 as pb

logger = logging.getLogger(__name__)
Infer = Callable[[pb.ModelInferRequest], Awaitable[pb.ModelInferResponse]]
# Asked for by tritonclient's enable_empty_final_response: every response of a model
# that is not decoupled is its request's final one, and says so.
FINAL_FLAG = "triton_enable_empty_final_response"
FINAL_RESPONSE = "triton_final_response"


def error_response(request: pb.ModelInferRequest, message: str
                   ) -> pb.ModelStreamInferResponse:
    return pb.ModelStreamInferResponse(
        error_message=message,
        infer_response=pb.ModelInferResponse(model_name=request.model_name,
                                             model_version=request.model_version,
                                             id=request.id))


async def answer(infer: Infer, request: pb.ModelInferRequest,
                 stream_id: str) -> pb.ModelStreamInferResponse:
    """One request's response: its result, or its error as a message (what the server
    knows beyond the message is logged with the stream's request id, as for unary calls)."""
    try:
        response = pb.ModelStreamInferResponse(infer_response=await infer(request))
    except ServingError as err:
        message = err.message
        if err.http_status >= 500:
            logger.warning("request %s (stream message %r): %s%s", stream_id, request.id,
                           err.message, f" ({err.detail})" if err.detail else "")
            message = f"{message} (request id {stream_id})"
        return error_response(request, message)
    except Exception:  # one request's failure must not end the stream
        logger.exception("request %s (stream message %r): unexpected error", stream_id,
                         request.id)
        return error_response(request, f"internal server error (request id {stream_id})")
    flag = request.parameters.get(FINAL_FLAG)
    if flag is not None and flag.bool_param:
        response.infer_response.parameters[FINAL_RESPONSE].bool_param = True
    return response


class InferStream:
    """The requests of one stream in flight, and their answers in completion order."""

    def __init__(self, infer: Infer, *, max_in_flight: int, max_bytes: int,
                 stream_id: str) -> None:
        self.infer = infer
        self.max_in_flight = max_in_flight
        self.max_bytes = max_bytes
        self.stream_id = stream_id
        self.count = 0  # requests computing, and the bytes of their messages
        self.bytes = 0
        self.room = asyncio.Event()
        self.answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        self.computing: set[asyncio.Task[None]] = set()

    async def responses(self, requests: AsyncIterator[pb.ModelInferRequest]
                        ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        reader = asyncio.create_task(self._read(requests))
        try:
            while (response := await self.answers.get()) is not None:
                yield response
            await reader  # raises what ended the reading, if anything did
        finally:
            reader.cancel()
            for task in self.computing:
                task.cancel()

    async def _read(self, requests: AsyncIterator[pb.ModelInferRequest]) -> None:
        """Start each request as it arrives, while there is room; then wait for the last."""
        try:
            async for request in requests:
                size = request.ByteSize()
                while self.count >= self.max_in_flight or (
                        self.count and self.bytes + size > self.max_bytes):
                    self.room.clear()
                    await self.room.wait()
                self.count += 1
                self.bytes += size
                task = asyncio.create_task(self._compute(request, size))
                self.computing.add(task)
                task.add_done_callback(self.computing.discard)
            while self.computing:
                await asyncio.wait(set(self.computing))
        finally:
            self.answers.put_nowait(None)  # the writer stops after the answers before it

    async def _compute(self, request: pb.ModelInferRequest, size: int) -> None:
        try:
            self.answers.put_nowait(await answer(self.infer, request, self.stream_id))
        finally:
            self.count -= 1
            self.bytes -= size
            self.room.set()
