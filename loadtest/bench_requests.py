"""What the benchmark sends: one request list per (model, protocol, payload), from real payloads.

One-item requests everywhere (the targets are stated for one-item requests); the
REST task endpoint gets the form an app would send (784 numbers, a review as JSON, a
raw JPEG), the tensor protocols get the model's input tensor named by the server.
Digits come as two payloads (bodies.digit_numbers): "ints" (0-255 pixels) and
"floats" (4 decimals), the same numbers on every protocol, so the paths compare like
with like; over gRPC the float numbers travel as ``tensor_content`` (TF Serving), or
as typed ``contents`` or ``raw_input_contents`` (v2).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np

from loadtest import bodies, grpc_messages
from loadtest.payloads import load_payloads

HTTP_PROTOCOLS = ("rest", "tfserving", "v2")
GRPC_PROTOCOLS = ("grpc-tfserving", "grpc-v2", "grpc-stream")
# The gRPC payload of each protocol: the field the numbers travel in.
GRPC_PAYLOADS = {"grpc-tfserving": ("tensor_content",), "grpc-v2": ("contents", "raw"),
                 "grpc-stream": ("raw",)}


def model_input(http_port: int, model: str) -> bodies.ModelInput:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}",
                                timeout=10) as resp:
        return bodies.ModelInput.from_v2_metadata(json.load(resp))


def tensors(model: str, repository: Path, payload: str = "") -> list[np.ndarray]:
    payloads = load_payloads()
    if model == "digit":
        return bodies.digit_numbers(payloads, payload or "floats", 32)
    if model == "text":
        return bodies.text_tensors(payloads, repository, model, 32)
    return bodies.image_tensors(payloads, 8)


def task_bodies(model: str, payload: str = "") -> list[bodies.Body]:
    payloads = load_payloads()
    if model == "digit":
        return bodies.digit_json_784(payloads, 32, payload or "ints")
    if model == "text":
        return [b for b in bodies.text_task_bodies(payloads, 48) if b.kind == "json"]
    return bodies.image_raw_bodies(payloads)


def http_bodies(protocol: str, model: str, http_port: int, repository: Path,
                payload: str = "") -> list[bodies.Body]:
    """Request bodies; digit tensors keep the payload's JSON numbers (ints stay ints)."""
    if protocol == "rest":
        return task_bodies(model, payload)
    inp = model_input(http_port, model)
    arrays = tensors(model, repository, payload)
    if model != "digit":
        arrays = [t.astype(inp.dtype) for t in arrays]
    if protocol == "tfserving":
        return [bodies.tfserving_body(model, a) for a in arrays]
    return [bodies.v2_body(model, inp, a) for a in arrays]


def grpc_calls(protocol: str, model: str, http_port: int, repository: Path,
               payload: str = "") -> list[grpc_messages.GrpcCall]:
    """Calls for ``protocol``; digits carry the float numbers (payload: the field)."""
    inp = model_input(http_port, model)
    arrays = [t.astype(inp.dtype) for t in tensors(model, repository, "floats")]
    payload = payload or GRPC_PAYLOADS[protocol][0]
    if protocol == "grpc-tfserving":
        return [grpc_messages.tfserving_predict(model, inp.name, a) for a in arrays]
    return [grpc_messages.v2_infer(model, inp.name, a, raw=payload == "raw",
                                   stream=protocol == "grpc-stream") for a in arrays]
