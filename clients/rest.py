"""REST client (httpx only): task endpoints, Open Inference Protocol v2 tensors, health.

``Client`` and ``AsyncClient`` have the same methods as clients.grpc's; the async
ones return awaitables. Overload answers (429/503) are retried with backoff.

    with Client("http://127.0.0.1:8000") as client:
        client.predict_text("a great film").predictions[0].label
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from clients import _common as common
from clients._common import Prediction, PredictResult, RetryPolicy
from clients.errors import ClientError, parse_retry_after
from serving.wire.dtypes import NUMPY_TO_V2, V2_TO_NUMPY

__all__ = ["AsyncClient", "Client", "ClientError", "PredictResult", "Prediction"]


@dataclass
class _Request:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    accept: frozenset[int] = frozenset({200})


def _b64(data: bytes) -> dict[str, str]:
    import base64

    return {"b64": base64.b64encode(data).decode("ascii")}


def _task_result(response: httpx.Response) -> PredictResult:
    body = response.json()
    return PredictResult(str(body["model_name"]), str(body["model_version"]), [
        Prediction(p["label"], float(p["probability"]),
                   [(t["label"], float(t["probability"])) for t in p.get("top", [])])
        for p in body["predictions"]])


def _v2_outputs(response: httpx.Response) -> dict[str, np.ndarray]:
    outputs = {}
    for out in response.json()["outputs"]:
        dtype = V2_TO_NUMPY[out["datatype"]]
        outputs[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
    return outputs


def _v2_input(name: str, array: Any) -> dict[str, Any]:
    arr = np.asarray(array)
    if arr.dtype.kind in "SUO":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
        return {"name": name, "datatype": "BYTES", "shape": list(arr.shape), "data": data}
    return {"name": name, "datatype": NUMPY_TO_V2[arr.dtype.name], "shape": list(arr.shape),
            "data": arr.reshape(-1).tolist()}


def _error(response: httpx.Response) -> ClientError:
    try:
        message = str(response.json().get("error", response.text))
    except ValueError:
        message = response.text[:500] or response.reason_phrase
    return ClientError(response.status_code, message,
                       retry_after=parse_retry_after(response.headers.get("retry-after")))


def _model_path(model: str, version: int | str | None) -> str:
    return f"/v2/models/{model}" + ("" if version is None else f"/versions/{version}")


class _RestApi:
    """The public methods; ``_run`` (sync or async) sends a _Request."""

    def _run(self, request: _Request) -> Any:
        raise NotImplementedError

    def _task(self, task: str, body: dict[str, Any], model: str | None,
              version: int | None, top_k: int | None) -> Any:
        params = {k: v for k, v in (("model", model), ("version", version), ("top_k", top_k))
                  if v is not None}
        return self._run(_Request("POST", f"/v1/{task}:predict", _task_result, json=body,
                                  params=params))

    def predict_image(self, images: Any, *, model: str | None = None,
                      version: int | None = None, top_k: int | None = None) -> Any:
        body = {"images": [_b64(b) for b in common.image_items(images)]}
        return self._task("image", body, model, version, top_k)

    def predict_text(self, texts: Any, *, model: str | None = None,
                     version: int | None = None, top_k: int | None = None) -> Any:
        return self._task("text", {"texts": common.text_items(texts)}, model, version, top_k)

    def predict_digit(self, digits: Any, *, model: str | None = None,
                      version: int | None = None, top_k: int | None = None) -> Any:
        items = [_b64(d) if isinstance(d, bytes) else d.tolist()
                 for d in common.digit_items(digits)]
        return self._task("digit", {"inputs": items}, model, version, top_k)

    def infer(self, model: str, inputs: dict[str, Any], version: int | None = None, *,
              outputs: list[str] | None = None) -> Any:
        body: dict[str, Any] = {"inputs": [_v2_input(k, v) for k, v in inputs.items()]}
        if outputs:
            body["outputs"] = [{"name": name} for name in outputs]
        return self._run(_Request("POST", _model_path(model, version) + "/infer", _v2_outputs,
                                  json=body))

    def model_metadata(self, model: str, version: int | None = None) -> Any:
        return self._run(_Request("GET", _model_path(model, version), lambda r: r.json()))

    def models(self) -> Any:
        return self._run(_Request("POST", "/v2/repository/index", lambda r: r.json(), json={}))

    def live(self) -> Any:
        return self._run(_Request("GET", "/v2/health/live", lambda r: r.status_code == 200,
                                  accept=frozenset({200, 503})))

    def ready(self) -> Any:
        return self._run(_Request("GET", "/v2/health/ready", lambda r: r.status_code == 200,
                                  accept=frozenset({200, 503})))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _transport_error(exc: httpx.TransportError) -> ClientError:
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(0, f"timed out: {exc}", retryable=False)
    return ClientError(0, f"connection failed: {exc}", retryable=isinstance(
        exc, httpx.ConnectError))


class Client(_RestApi):
    def __init__(self, url: str = "http://127.0.0.1:8000", *,
                 timeout: float = common.DEFAULT_TIMEOUT_S, retries: int = 3,
                 api_key: str | None = None, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy(retries=retries)
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout,
                                  headers=_headers(api_key))

    def _once(self, request: _Request) -> Any:
        try:
            response = self._http.request(request.method, request.path, json=request.json,
                                          params=request.params)
        except httpx.TransportError as exc:
            raise _transport_error(exc) from exc
        if response.status_code not in request.accept:
            raise _error(response)
        return request.parse(response)

    def _run(self, request: _Request) -> Any:
        attempt = 0
        while True:
            try:
                return self._once(request)
            except ClientError as err:
                delay = self.retry.delay(attempt, err)
                if delay is None:
                    raise
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_RestApi):
    def __init__(self, url: str = "http://127.0.0.1:8000", *,
                 timeout: float = common.DEFAULT_TIMEOUT_S, retries: int = 3,
                 api_key: str | None = None, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retry = retry or RetryPolicy(retries=retries)
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout,
                                       headers=_headers(api_key), transport=transport)

    async def _once(self, request: _Request) -> Any:
        try:
            response = await self._http.request(request.method, request.path,
                                                json=request.json, params=request.params)
        except httpx.TransportError as exc:
            raise _transport_error(exc) from exc
        if response.status_code not in request.accept:
            raise _error(response)
        return request.parse(response)

    async def _run(self, request: _Request) -> Any:
        attempt = 0
        while True:
            try:
                return await self._once(request)
            except ClientError as err:
                delay = self.retry.delay(attempt, err)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
