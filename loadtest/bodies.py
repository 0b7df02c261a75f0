"""HTTP request bodies for every REST endpoint, built once from the real payloads.

Shared by the Locust users and the benchmark client so both send the same bytes.
Tensor protocols (TF Serving REST, Open Inference Protocol v2) take the model's input
name from the server's metadata (``ModelInput``), never from a hard-coded name.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.payloads import Payloads

JSON = "application/json"
V2_DATATYPES = {"float32": "FP32", "int32": "INT32", "int64": "INT64", "float64": "FP64"}


@dataclass(frozen=True)
class Body:
    """One ready-to-send request: path, content type, bytes, and items it carries."""

    path: str
    content_type: str
    data: bytes
    items: int = 1
    kind: str = "json"


@dataclass(frozen=True)
class ModelInput:
    """What the server's metadata says about a model's (single) input."""

    name: str
    dtype: str  # numpy name: float32, int32, ...

    @classmethod
    def from_v2_metadata(cls, meta: dict) -> ModelInput:
        spec = meta["inputs"][0]
        by_v2 = {v: k for k, v in V2_DATATYPES.items()}
        return cls(name=spec["name"], dtype=by_v2.get(spec["datatype"], "float32"))


def _json(path: str, obj: object, kind: str = "json", items: int = 1) -> Body:
    return Body(path, JSON, json.dumps(obj, separators=(",", ":")).encode(), items, kind)


def multipart(path: str, files: list[tuple[str, bytes, str]], kind: str = "multipart") -> Body:
    """A multipart/form-data body with one "file" field per (filename, bytes, type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for filename, data, ctype in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
                     + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return Body(path, f"multipart/form-data; boundary={boundary}", b"".join(parts),
                len(files), kind)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digit_task_bodies(p: Payloads, n: int = 64) -> list[Body]:
    """The task endpoint's accepted digit forms, cycling through the real test digits."""
    path = "/v1/digit:predict"
    out = []
    for i in range(min(n, len(p.digits))):
        digit = p.digits[i]
        form = i % 4
        if form == 0:
            out.append(_json(path, {"input": digit.reshape(-1).tolist()}, "json-784"))
        elif form == 1:
            out.append(_json(path, {"inputs": [digit.tolist()]}, "json-28x28"))
        elif form == 2:
            out.append(_json(path, {"input": {"b64": b64(p.digit_png(i))}}, "json-b64"))
        else:
            out.append(multipart(path, [(f"digit{i}.png", p.digit_png(i), "image/png")]))
    return out


DIGIT_PAYLOADS = ("ints", "floats")


def digit_numbers(p: Payloads, payload: str, n: int = 32) -> list[np.ndarray]:
    """(1, 784) arrays of the numbers an app sends for a digit, as JSON will carry them.

    "ints": MNIST test pixels 0-255 (int64; mostly zeros, cheap to parse);
    "floats": numbers in [0, 1) with 4 decimals (float64), random so that none is a
    short "0.0": the costlier payload of an app that normalises its pixels itself.
    """
    if payload == "ints":
        return [p.digits[i].reshape(1, -1).astype(np.int64)
                for i in range(min(n, len(p.digits)))]
    if payload == "floats":
        rng = np.random.default_rng(784)
        return [rng.random((1, 784)).round(4) for _ in range(n)]
    raise ValueError(f"unknown digit payload {payload!r}; known: {DIGIT_PAYLOADS}")


def digit_json_784(p: Payloads, n: int = 64, payload: str = "ints") -> list[Body]:
    """One form only (784 numbers): the benchmark's digit request."""
    path = "/v1/digit:predict"
    return [_json(path, {"input": a.reshape(-1).tolist()}, "json-784")
            for a in digit_numbers(p, payload, n)]


def text_task_bodies(p: Payloads, n: int = 64) -> list[Body]:
    path = "/v1/text:predict"
    out = []
    for i, text in enumerate(p.texts[:n]):
        if i % 3 == 2:
            out.append(Body(path, "text/plain; charset=utf-8", text.encode(), 1, "text-plain"))
        else:
            out.append(_json(path, {"text": text}))
    return out


def image_task_bodies(p: Payloads, *, photos: bool = True) -> list[Body]:
    """Model-size images as raw JPEG, multipart and base64 JSON; photos as uploads."""
    path = "/v1/image:predict"
    out = []
    for i, jpeg in enumerate(p.images):
        if i % 3 == 0:
            out.append(Body(path, "image/jpeg", jpeg, 1, "raw-jpeg"))
        elif i % 3 == 1:
            out.append(multipart(path, [(f"item{i}.jpg", jpeg, "image/jpeg")]))
        else:
            out.append(_json(path, {"image": b64(jpeg)}, "json-b64"))
    if photos:
        out += [multipart(path, [(f"photo{i}.jpg", jpeg, "image/jpeg")], "photo")
                for i, jpeg in enumerate(p.photos)]
    return out


def image_raw_bodies(p: Payloads) -> list[Body]:
    """Model-size JPEGs as raw bodies only: the benchmark's image request."""
    return [Body("/v1/image:predict", "image/jpeg", jpeg, 1, "raw-jpeg") for jpeg in p.images]


def digit_tensors(p: Payloads, n: int = 64) -> list[np.ndarray]:
    """(1, 784) float32 in [0, 1], as the digit model takes them."""
    return [(p.digits[i].reshape(1, -1).astype(np.float32) / 255.0)
            for i in range(min(n, len(p.digits)))]


def text_tensors(p: Payloads, repository: Path | None, model: str = "text",
                 n: int = 64) -> list[np.ndarray]:
    """(1, max_length) int32 token ids using the served model's own tokenizer."""
    from serving.codecs import TextCodec  # numpy-only shared codec
    from serving.models.manifest import list_versions, read_manifest

    if repository is None:
        return []
    versions = list_versions(repository / model)
    if not versions:
        return []
    version_dir = repository / model / str(versions[-1])
    codec = TextCodec.from_preprocessing(read_manifest(version_dir).preprocessing, version_dir)
    return [codec.encode([t]) for t in p.texts[:n]]


def image_tensors(p: Payloads, n: int = 8) -> list[np.ndarray]:
    """(1, H, W, 3) float32 in [0, 1] decoded from the model-size JPEGs."""
    import io

    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(j)).convert("RGB"), dtype=np.float32)[None] / 255.0
            for j in p.images[:n]]


def tfserving_body(model: str, tensor: np.ndarray) -> Body:
    return _json(f"/v1/models/{model}:predict", {"instances": tensor.tolist()}, "tfserving",
                 items=tensor.shape[0])


def v2_body(model: str, inp: ModelInput, tensor: np.ndarray) -> Body:
    """The tensor's numbers as JSON (ints stay ints), typed as the model's input."""
    request = {"inputs": [{"name": inp.name, "shape": list(tensor.shape),
                           "datatype": V2_DATATYPES[inp.dtype],
                           "data": tensor.reshape(-1).tolist()}]}
    return _json(f"/v2/models/{model}/infer", request, "v2", items=tensor.shape[0])


def check_answer(body: Body, answer: dict) -> str | None:
    """None when the answer fits the request, else why not (a cheap shape check)."""
    if body.kind == "tfserving":
        got = len(answer.get("predictions", answer.get("outputs", [])))
    elif body.kind == "v2":
        outputs = answer.get("outputs") or [{}]
        got = (outputs[0].get("shape") or [0])[0]
    else:
        got = len(answer.get("predictions", []))
    return None if got == body.items else f"expected {body.items} results, got {got}"
