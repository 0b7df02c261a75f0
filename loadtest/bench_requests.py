"""What the benchmark sends: one request list per (model, protocol), from real payloads.

One-item requests everywhere (the targets are stated for one-item requests); the
REST task endpoint gets the form an app would send (784 numbers, a review as JSON, a
raw JPEG), the tensor protocols get the model's input tensor named by the server.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np

from loadtest import bodies, grpc_messages
from loadtest.payloads import load_payloads

HTTP_PROTOCOLS = ("rest", "tfserving", "v2")
GRPC_PROTOCOLS = ("grpc-tfserving", "grpc-v2")


def model_input(http_port: int, model: str) -> bodies.ModelInput:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}",
                                timeout=10) as resp:
        return bodies.ModelInput.from_v2_metadata(json.load(resp))


def tensors(model: str, repository: Path) -> list[np.ndarray]:
    payloads = load_payloads()
    if model == "digit":
        return bodies.digit_tensors(payloads, 32)
    if model == "text":
        return bodies.text_tensors(payloads, repository, model, 32)
    return bodies.image_tensors(payloads, 8)


def task_bodies(model: str) -> list[bodies.Body]:
    payloads = load_payloads()
    if model == "digit":
        return bodies.digit_json_784(payloads, 32)
    if model == "text":
        return [b for b in bodies.text_task_bodies(payloads, 48) if b.kind == "json"]
    return bodies.image_raw_bodies(payloads)


def http_bodies(protocol: str, model: str, http_port: int,
                repository: Path) -> list[bodies.Body]:
    if protocol == "rest":
        return task_bodies(model)
    inp = model_input(http_port, model)
    arrays = [t.astype(inp.dtype) for t in tensors(model, repository)]
    if protocol == "tfserving":
        return [bodies.tfserving_body(model, a) for a in arrays]
    return [bodies.v2_body(model, inp, a) for a in arrays]


def grpc_calls(protocol: str, model: str, http_port: int,
               repository: Path) -> list[grpc_messages.GrpcCall]:
    inp = model_input(http_port, model)
    arrays = [t.astype(inp.dtype) for t in tensors(model, repository)]
    build = grpc_messages.tfserving_predict if protocol == "grpc-tfserving" \
        else grpc_messages.v2_infer
    return [build(model, inp.name, a) for a in arrays]
