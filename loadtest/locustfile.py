"""Locust users for every modelserve endpoint, with real payloads.

    locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8000 -u 8 -r 8 -t 20s \
        --mix digit=4,text=3,image=2,tfserving=1,v2=1,grpc=1 --grpc-target 127.0.0.1:8500

Users (``key`` = name in --mix): digit, text, image (task endpoints, in every accepted
request form, incl. photos at camera sizes), tfserving (TF Serving REST), v2 (Open
Inference Protocol REST), grpc (TF Serving Predict and KServe v2 ModelInfer over gRPC,
reported as Locust requests of type "grpc"). LOADTEST_SHAPE=step|ramp picks a load
shape (loadtest/shapes.py); --arrival-rate switches every user to open loop.
`modelserve loadtest` runs this file headless and writes the report.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

from loadtest import bodies
from loadtest.grpc_user import GrpcUser
from loadtest.locust_support import OpenLoop, add_options, apply_mix, open_loop_wait
from loadtest.payloads import load_payloads
from loadtest.shapes import shape_class

log = logging.getLogger(__name__)
Shape = shape_class(os.environ.get("LOADTEST_SHAPE", "constant"))


class ServingHttpUser(FastHttpUser):
    """Posts prepared bodies and checks each answer; one keep-alive connection per user."""

    abstract = True
    key = ""
    concurrency = 64  # connection pool: open loop may have several requests in flight
    wait_time = open_loop_wait

    def on_start(self) -> None:
        self._cycle = itertools.cycle(self.prepare())

    def prepare(self) -> list[bodies.Body]:
        raise NotImplementedError

    @task
    def send_next(self) -> None:
        body = next(self._cycle)
        name = f"{body.path} [{body.kind}]"
        OpenLoop.fire(self, lambda: self._post(body, name), name, "POST")

    def _post(self, body: bodies.Body, name: str) -> None:
        # Bytes are sent as is (the stubs only list str and dict).
        data: Any = body.data
        with self.client.post(body.path, data=data, name=name, catch_response=True,
                              headers={"Content-Type": body.content_type}) as resp:
            if resp.status_code != 200:
                detail = resp.error if resp.status_code == 0 else (resp.text or "")[:200]
                resp.failure(f"HTTP {resp.status_code}: {detail}")
                return
            problem = bodies.check_answer(body, resp.json())
            if problem:
                resp.failure(problem)

    def model_input(self, model: str) -> bodies.ModelInput:
        with self.client.get(f"/v2/models/{model}", name="/v2/models/{name} [metadata]",
                             catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                raise RuntimeError(f"no metadata for model {model!r}: HTTP {resp.status_code}")
            return bodies.ModelInput.from_v2_metadata(resp.json())


class DigitUser(ServingHttpUser):
    key = "digit"

    def prepare(self) -> list[bodies.Body]:
        return bodies.digit_task_bodies(load_payloads())


class TextUser(ServingHttpUser):
    key = "text"

    def prepare(self) -> list[bodies.Body]:
        return bodies.text_task_bodies(load_payloads())


class ImageUser(ServingHttpUser):
    key = "image"

    def prepare(self) -> list[bodies.Body]:
        return bodies.image_task_bodies(load_payloads())


class _TensorUser(ServingHttpUser):
    """Digit (and text, when the repository's tokenizer is at hand) as raw tensors."""

    abstract = True

    def tensors(self) -> dict[str, list]:
        payloads = load_payloads()
        repo = self.environment.parsed_options.model_repository
        out = {"digit": bodies.digit_tensors(payloads, 32)}
        texts = bodies.text_tensors(payloads, Path(repo) if repo else None, n=32)
        if texts:
            out["text"] = texts
        return out

    def build(self, model: str, inp: bodies.ModelInput, tensor) -> bodies.Body:
        raise NotImplementedError

    def prepare(self) -> list[bodies.Body]:
        prepared = []
        for model, tensors in self.tensors().items():
            inp = self.model_input(model)
            prepared += [self.build(model, inp, t.astype(inp.dtype)) for t in tensors]
        return prepared


class TFServingUser(_TensorUser):
    key = "tfserving"

    def build(self, model: str, inp: bodies.ModelInput, tensor) -> bodies.Body:
        return bodies.tfserving_body(model, tensor)


class V2User(_TensorUser):
    key = "v2"

    def build(self, model: str, inp: bodies.ModelInput, tensor) -> bodies.Body:
        return bodies.v2_body(model, inp, tensor)


USERS = (DigitUser, TextUser, ImageUser, TFServingUser, V2User, GrpcUser)


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    add_options(parser)


@events.init.add_listener
def _configure(environment, **_kwargs) -> None:
    if environment.parsed_options is not None:
        apply_mix(environment, USERS)
