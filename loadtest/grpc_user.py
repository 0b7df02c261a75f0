"""A Locust user speaking gRPC: TF Serving Predict and KServe v2 ModelInfer.

Each RPC fires a Locust request event (type "grpc"), so gRPC shows in the same
statistics, CSV and report as REST. grpcio runs under gevent here (init_gevent before
any channel exists), so one Locust process drives many concurrent gRPC users.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, task

from loadtest import bodies, grpc_messages
from loadtest.locust_support import OpenLoop, fire_timed, open_loop_wait
from loadtest.payloads import load_payloads

grpc_gevent.init_gevent()
log = logging.getLogger(__name__)
TIMEOUT_S = 30.0


class GrpcUser(User):
    """Alternates TF Serving Predict and v2 ModelInfer over the digit (and text) model."""

    key = "grpc"
    wait_time = open_loop_wait

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.channel = grpc.insecure_channel(options.grpc_target)
        self._calls: dict[str, Any] = {}
        self._cycle = itertools.cycle(self.prepare(options.model_repository))

    def on_stop(self) -> None:
        OpenLoop.join(self)
        self.channel.close()

    def _callable(self, call: grpc_messages.GrpcCall):
        if call.method not in self._calls:
            self._calls[call.method] = self.channel.unary_unary(
                call.method, request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=call.response_type.FromString)
        return self._calls[call.method]

    def input_of(self, model: str) -> tuple[str, str]:
        from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb2

        metadata = self.channel.unary_unary(
            grpc_messages.MODEL_METADATA, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=v2_pb2.ModelMetadataResponse.FromString)
        return grpc_messages.input_from_v2_metadata(
            metadata(grpc_messages.v2_metadata_request(model), timeout=TIMEOUT_S))

    def prepare(self, repository: str) -> list[grpc_messages.GrpcCall]:
        payloads = load_payloads()
        tensors = {"digit": bodies.digit_tensors(payloads, 32),
                   "text": bodies.text_tensors(payloads, Path(repository) if repository
                                               else None, n=32)}
        calls = []
        for model, arrays in tensors.items():
            if not arrays:
                continue
            name, dtype = self.input_of(model)
            for i, array in enumerate(arrays):
                build = grpc_messages.tfserving_predict if i % 2 else grpc_messages.v2_infer
                calls.append(build(model, name, array.astype(dtype)))
        return calls

    @task
    def send_next(self) -> None:
        call = next(self._cycle)
        name = call.name
        OpenLoop.fire(self, lambda: fire_timed(self.environment, "grpc", name,
                                               lambda: self._send(call)), name, "grpc")

    def _send(self, call: grpc_messages.GrpcCall) -> int:
        response = self._callable(call)(call.request, timeout=TIMEOUT_S)
        problem = grpc_messages.check_response(call, response)
        if problem:
            raise ValueError(problem)
        return response.ByteSize()
