"""TensorFlow Serving REST API: model status, metadata, and :predict (row and columnar).

Request and response shapes follow TF Serving's REST API: ``instances`` →
``predictions``, ``inputs`` → ``outputs``, ``{"b64": "..."}`` values, errors as
``{"error": "..."}``. Strings and ``{"b64": ...}`` values (bytes) for a numeric input
are a string tensor of encoded items, which the dataplane hands to the model's task
(images for the image task, texts for the text task; a model without a task refuses
them). A string input takes strings and ``{"b64": ...}`` values as they are. The
signature is the model's own (``serving_default`` unless imported otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.admission import OBJECT, WireTensor, object_array
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.models.manifest import TensorSpec
from serving.models.status_reports import version_status
from serving.rest.body import (
    MAX_JSON_VALUES,
    check_json_cost,
    json_response,
    parse_json_object,
    request_deadline,
)
from serving.rest.hot_routes import TensorEndpoint
from serving.rest.json_tensors import numeric_tensor
from serving.rest.tensors import to_array
from serving.routing import ROUTING_KEY_HEADER, VERSION_HEADER
from serving.versions import parse_version
from serving.wire.b64 import b64_bytes, b64decode, is_b64
from serving.wire.dtypes import tf_datatype

if TYPE_CHECKING:
    from serving.models.registry import ServedModel

PROTOCOL = "rest"


def version_status_json(served: ServedModel) -> dict[str, Any]:
    report = version_status(served)
    return {"version": str(report.version), "state": report.state,
            "status": {"error_code": report.error_code,
                       "error_message": report.error_message}}


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {"dtype": tf_datatype(spec.dtype), "name": spec.name,
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape],
                             "unknown_rank": False}}


def metadata(served: ServedModel) -> dict[str, Any]:
    manifest = served.manifest
    signature = {"inputs": {s.name: _tensor_info(s) for s in manifest.inputs},
                 "outputs": {s.name: _tensor_info(s) for s in manifest.outputs},
                 "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": served.name, "signature_name": "",
                           "version": str(served.version)},
            "metadata": {"signature_def": {"signature_def": {
                manifest.signature_name: signature}}}}


def string_tensor(values: Any, name: str) -> np.ndarray:
    """Strings and {"b64": ...} values (bytes) → an object array; the dataplane checks
    that every element is one (a ragged list leaves lists behind)."""
    arr = np.array(values, dtype=object)
    flat = arr.reshape(-1)  # a view: decoded values land in ``arr``
    for i, value in enumerate(flat):
        if is_b64(value):
            flat[i] = b64decode(value["b64"], f"input {name!r}")
    return arr


def to_tensor(spec: TensorSpec, values: Any) -> WireTensor:
    """JSON values for one input: numbers → its array; a string input's strings and
    ``{"b64"}`` values → its string tensor; strings and ``{"b64"}`` values for a numeric
    input → a string tensor of encoded items, which the dataplane counts, then hands to
    the model's task (base64 is undone only after the count)."""
    if spec.dtype == "object":  # its cost is bounded by the body's (check_json_cost)
        return WireTensor.of(spec.name, string_tensor(values, spec.name))
    items = values if isinstance(values, list) else [values]
    if items and (is_b64(items[0]) or isinstance(items[0], str)):  # a list of items
        return WireTensor(spec.name, OBJECT, (len(items),), lambda: _items(items))
    return WireTensor.of(spec.name, to_array(values, spec.dtype, spec.name))


def _items(values: list[Any]) -> np.ndarray:
    """Encoded items: ``{"b64"}`` values as bytes, anything else as sent (the task says
    what it takes)."""
    return object_array([b64_bytes(v, f"instance {i}") if is_b64(v) else v
                         for i, v in enumerate(values)])


def row_inputs(specs: list[TensorSpec], instances: Any) -> dict[str, WireTensor]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list")
    named = isinstance(instances[0], dict) and not is_b64(instances[0])
    if not named:
        if len(specs) != 1:
            raise InvalidInput(f"model has {len(specs)} inputs: name them in each instance")
        return {specs[0].name: to_tensor(specs[0], instances)}
    if not all(isinstance(inst, dict) for inst in instances):
        raise InvalidInput("instances mix named objects and plain values")
    out = {}
    for spec in specs:
        try:
            column = [inst[spec.name] for inst in instances]
        except KeyError as exc:
            raise InvalidInput(f"an instance lacks input {spec.name!r}") from exc
        out[spec.name] = to_tensor(spec, column)
    return out


def columnar_inputs(specs: list[TensorSpec], inputs: Any) -> dict[str, WireTensor]:
    if isinstance(inputs, dict) and not is_b64(inputs):
        unknown = sorted(set(inputs) - {s.name for s in specs})
        if unknown:
            raise InvalidInput(f"unknown inputs {unknown}; the model takes "
                               f"{[s.name for s in specs]}")
        return {s.name: to_tensor(s, inputs[s.name]) for s in specs if s.name in inputs}
    if len(specs) != 1:
        raise InvalidInput(f"model has {len(specs)} inputs: give 'inputs' as an object")
    return {specs[0].name: to_tensor(specs[0], inputs)}


def predict_body(arrays: dict[str, np.ndarray], row: bool) -> dict[str, Any]:
    # orjson writes numeric arrays from their buffers; string tensors go as lists.
    outputs = {k: v.tolist() if v.dtype.kind == "O" else v for k, v in arrays.items()}
    if not row:
        only = len(outputs) == 1
        return {"outputs": next(iter(outputs.values())) if only else outputs}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    rows = {v.shape[0] if v.ndim else -1 for v in arrays.values()}
    if len(rows) != 1 or -1 in rows:
        raise InvalidInput("the outputs do not share a first dimension, so they cannot be "
                           "given as rows; send 'inputs' (columnar) instead of 'instances'")
    n = rows.pop()
    # A 1-D output's rows are numpy scalars, which orjson refuses for some dtypes (longlong).
    columns = {k: v.tolist() if isinstance(v, np.ndarray) and v.ndim == 1 else v
               for k, v in outputs.items()}
    return {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(n)]}


def predict_endpoint(dataplane: DataPlane, settings: Settings) -> TensorEndpoint:
    """``:predict`` for (request, model name, version segment, label segment): FastAPI's
    routes below and the hot lanes (hot_routes.py) answer with it."""

    def parsed(raw: bytes, name: str, version: int | None
               ) -> tuple[ServedModel, dict[str, np.ndarray] | dict[str, WireTensor], bool]:
        """(model, inputs, row format?) of a predict body."""
        check_json_cost(raw, MAX_JSON_VALUES)  # simdjson's parse, then orjson's if it must
        served = dataplane.model(name, version)
        signature = served.manifest.signature_name
        if (fast := numeric_tensor(raw, signature)) is not None:
            specs = served.manifest.inputs
            if len(specs) == 1 and np.dtype(specs[0].dtype).kind == "f":
                array, row = fast
                with np.errstate(over="ignore"):  # past float32's range: inf, refused later
                    return served, {specs[0].name: array.astype(specs[0].dtype)}, row
        body = parse_json_object(raw)
        asked = body.get("signature_name") or signature
        if asked != signature:
            raise InvalidInput(f"serving signature name {asked!r} not found; "
                               f"use {signature!r}")
        if ("instances" in body) == ("inputs" in body):
            raise InvalidInput("give exactly one of 'instances' (row) or 'inputs' (columnar)")
        row = "instances" in body
        specs = served.manifest.inputs
        inputs = row_inputs(specs, body["instances"]) if row else \
            columnar_inputs(specs, body["inputs"])
        return served, inputs, row

    async def predict(request: Request, name: str, version_text: str | None,
                      label: str | None) -> Response:
        # One choice of version for parsing and inference (labels, traffic split).
        version = dataplane.route(name, None if label is not None else
                                  parse_version(version_text), label=label,
                                  key=request.headers.get(ROUTING_KEY_HEADER))
        served, inputs, row = parsed(await request.body(), name, version)
        result = await dataplane.infer(served.name, version, inputs, protocol=PROTOCOL,
                                       deadline=request_deadline(request,
                                                                 settings.request_timeout_s))
        response = json_response(predict_body(result.outputs, row))
        response.headers[VERSION_HEADER] = str(result.model_version)
        return response

    return predict


def build_router(dataplane: DataPlane, settings: Settings,
                 predict: TensorEndpoint | None = None) -> APIRouter:
    router = APIRouter(tags=["tensorflow-serving"])
    predict = predict or predict_endpoint(dataplane, settings)

    @router.post("/v1/models/{name}:predict")
    async def predict_latest(request: Request, name: str) -> Response:
        return await predict(request, name, None, None)

    @router.post("/v1/models/{name}/versions/{version}:predict")
    async def predict_version(request: Request, name: str, version: str) -> Response:
        return await predict(request, name, version, None)

    @router.post("/v1/models/{name}/labels/{label}:predict")
    async def predict_label(request: Request, name: str, label: str) -> Response:
        return await predict(request, name, None, label)

    _status_and_metadata_routes(router, dataplane)
    return router


def _status_and_metadata_routes(router: APIRouter, dataplane: DataPlane) -> None:
    def status(name: str, version: int | None) -> Response:
        served = dataplane.model_statuses(name, version)
        return json_response({"model_version_status": [version_status_json(m)
                                                       for m in served]})

    @router.get("/v1/models/{name}")
    async def status_all(name: str) -> Response:
        return status(name, None)

    @router.get("/v1/models/{name}/versions/{version}")
    async def status_version(name: str, version: str) -> Response:
        return status(name, parse_version(version))

    @router.get("/v1/models/{name}/labels/{label}")
    async def status_label(name: str, label: str) -> Response:
        return status(name, dataplane.label_version(name, label))

    @router.get("/v1/models/{name}/metadata")
    async def metadata_latest(name: str) -> Response:
        return json_response(metadata(dataplane.model(name)))

    @router.get("/v1/models/{name}/versions/{version}/metadata")
    async def metadata_version(name: str, version: str) -> Response:
        return json_response(metadata(dataplane.model(name, parse_version(version))))

    @router.get("/v1/models/{name}/labels/{label}/metadata")
    async def metadata_label(name: str, label: str) -> Response:
        return json_response(metadata(dataplane.model(name,
                                                      dataplane.label_version(name, label))))

