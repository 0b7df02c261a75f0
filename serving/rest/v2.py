"""Open Inference Protocol (KServe v2) REST: health, metadata, readiness, infer.

JSON tensors are parsed straight into numpy; Triton's binary tensor data
extension (``Inference-Header-Content-Length``) is handled in v2_binary.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.admission import MAX_RANK, WireTensor, declared_shape, object_array
from serving.config import Settings
from serving.dataplane import DataPlane
from serving.errors import InvalidInput
from serving.models.manifest import TensorSpec
from serving.rest import v2_binary
from serving.rest.body import (
    MAX_JSON_VALUES,
    MAX_PLAIN_JSON_VALUES,
    check_json_cost,
    json_response,
    parse_json,
    request_deadline,
)
from serving.rest.errors import error_response
from serving.rest.hot_routes import TensorEndpoint
from serving.rest.json_tensors import v2_request
from serving.rest.tensors import to_array
from serving.routing import KEY_PARAMETER, LABEL_PARAMETER, ROUTING_KEY_HEADER, VERSION_HEADER
from serving.versions import parse_version
from serving.wire.dtypes import V2_TO_NUMPY, v2_datatype

if TYPE_CHECKING:
    from serving.models.registry import ServedModel

PROTOCOL = "rest"
PLATFORM = "onnxruntime_onnx"


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": v2_datatype(spec.dtype), "shape": spec.shape}


def model_metadata(dataplane: DataPlane, served: ServedModel) -> dict[str, Any]:
    versions = [str(v) for v in dataplane.available_versions(served.name)]
    manifest = served.manifest
    return {"name": served.name, "versions": versions, "platform": PLATFORM,
            "inputs": [tensor_metadata(s) for s in manifest.inputs],
            "outputs": [tensor_metadata(s) for s in manifest.outputs],
            "parameters": {"version": str(served.version), "task": manifest.task,
                           "labels": manifest.labels, "providers": served.providers,
                           **dataplane.routing.describe(served.name)}}


def json_tensor(item: dict[str, Any], spec: TensorSpec | None) -> WireTensor:
    """One v2 JSON input, declared: its datatype and shape; the array is built once the
    dataplane has admitted them."""
    name = item.get("name")
    datatype = item.get("datatype")
    if not isinstance(name, str) or datatype not in V2_TO_NUMPY:
        raise InvalidInput(f"input {name!r}: needs a name and a datatype from "
                           f"{sorted(V2_TO_NUMPY)}, got {datatype!r}")
    shape = declared_shape(name, item.get("shape"))
    # BYTES for a numeric input: encoded items (images, texts) for the model's codec.
    if spec is not None and V2_TO_NUMPY[datatype] != spec.dtype and datatype != "BYTES":
        raise InvalidInput(f"input {name!r} must be {v2_datatype(spec.dtype)} (or BYTES "
                           f"holding encoded items), got {datatype}")
    if "data" not in item:
        raise InvalidInput(f"input {name!r} has no 'data'")
    data = item["data"]
    return WireTensor(name, np.dtype(V2_TO_NUMPY[datatype]), shape,
                      lambda: _json_array(name, datatype, shape, data))


def _json_array(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    size = math.prod(shape)
    if datatype == "BYTES":
        arr = _strings(name, data, size)
    else:
        arr = to_array(data, V2_TO_NUMPY[datatype], name)
    if arr.size != size:
        raise InvalidInput(f"input {name!r}: shape {list(shape)} needs {size} values, "
                           f"got {arr.size}")
    return arr.reshape(shape)


def _strings(name: str, data: Any, size: int) -> np.ndarray:
    """BYTES elements in JSON: strings (flat or nested lists of them), at most ``size``
    of them; anything else is the client's mistake, named."""
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if isinstance(value, str):
            if len(found) == size:
                raise InvalidInput(f"input {name!r}: more BYTES elements than its shape "
                                   f"holds ({size})")
            found.append(value)
        elif isinstance(value, list) and depth < MAX_RANK:
            for element in value:
                walk(element, depth + 1)
        else:
            raise InvalidInput(f"input {name!r}: BYTES elements in JSON must be strings, "
                               f"got {type(value).__name__}")
    walk(data, 0)
    return object_array(found)


def routing_parameters(parameters: Any) -> tuple[str | None, str | None]:
    """(version label, routing key) from a request's ``parameters``, if given."""
    if parameters is None:
        return None, None
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    found = []
    for key in (LABEL_PARAMETER, KEY_PARAMETER):
        value = parameters.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"parameter {key!r} must be a string")
        found.append(value or None)
    return found[0], found[1]


def request_id(body: dict[str, Any]) -> str | None:
    """The request's ``id``, echoed in the response: a string, as the protocol says."""
    value = body.get("id")
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"'id' must be a string, got {type(value).__name__}")


def parse_request(body: dict[str, Any], served: ServedModel, binary: bytes
                  ) -> tuple[dict[str, WireTensor], list[str] | None, set[str]]:
    """→ (inputs, requested output names or None, names of outputs wanted as binary)."""
    specs = {s.name: s for s in served.manifest.inputs}
    items = body.get("inputs")
    if not isinstance(items, list) or not items:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    offset = 0
    inputs: dict[str, WireTensor] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput("each input must be an object")
        size = v2_binary.binary_size(item)
        if size is None:
            tensor = json_tensor(item, specs.get(str(item.get("name"))))
        else:
            tensor, offset = v2_binary.read_tensor(item, binary, offset, size)
        if tensor.name in inputs:
            raise InvalidInput(f"input {tensor.name!r} is given twice")
        inputs[tensor.name] = tensor
    if offset != len(binary):
        raise InvalidInput(f"binary data holds {len(binary)} bytes; inputs used {offset}")
    return inputs, *v2_binary.requested_outputs(body)


def infer_endpoint(dataplane: DataPlane, settings: Settings) -> TensorEndpoint:
    """``infer`` for (request, model name, version segment, -): FastAPI's routes below and
    the hot lanes (hot_routes.py) answer with it."""

    async def infer(request: Request, name: str, version_text: str | None,
                    label: str | None = None) -> Response:
        version = parse_version(version_text)
        dataplane.model_statuses(name, version)  # 404 before reading an unknown model's body
        header, binary = v2_binary.split_body(request.headers, await request.body())
        check_json_cost(header, MAX_JSON_VALUES)
        body = v2_request(header, MAX_PLAIN_JSON_VALUES) or parse_json(header)
        if not isinstance(body, dict):
            raise InvalidInput("request body must be a JSON object")
        echo = request_id(body)
        # One choice of version for parsing and inference (labels, traffic split).
        label, key = routing_parameters(body.get("parameters"))
        version = dataplane.route(name, version, label=label,
                                  key=key or request.headers.get(ROUTING_KEY_HEADER))
        served = dataplane.model(name, version)
        inputs, wanted, as_binary = parse_request(body, served, binary)
        call = dataplane.infer(served.name, version, inputs, protocol=PROTOCOL,
                               output_names=wanted,
                               deadline=request_deadline(request, settings.request_timeout_s))
        # The parsed JSON is the inputs' now: the dataplane lets it go once it has built
        # the tensors, unless this frame still holds it.
        del body, inputs
        result = await call
        response = {"model_name": result.model_name, "model_version": str(result.model_version)}
        if echo is not None:
            response["id"] = echo
        answer = v2_binary.encode_response(response, result.outputs, as_binary)
        answer.headers[VERSION_HEADER] = str(result.model_version)
        return answer

    return infer


def build_router(dataplane: DataPlane, settings: Settings,
                 infer: TensorEndpoint | None = None) -> APIRouter:
    router = APIRouter(tags=["v2"])
    infer = infer or infer_endpoint(dataplane, settings)

    @router.get("/v2")
    async def server_metadata() -> Response:
        return json_response(dataplane.server_metadata())

    @router.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": dataplane.live()})

    @router.get("/v2/health/ready")
    async def ready() -> Response:
        ok = dataplane.ready()
        return json_response({"ready": ok}, status=200 if ok else 503)

    async def model_ready(name: str, version: int | None) -> Response:
        dataplane.model_statuses(name, version)  # 404 for an unknown model or version
        ok = dataplane.model_ready(name, version)
        if ok:
            return json_response({"name": name, "ready": True})
        return error_response(400, f"model {name} is not ready")

    for path in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        router.add_api_route(path, _with_version(lambda n, v: json_response(
            model_metadata(dataplane, dataplane.model(n, v)))), methods=["GET"])
        router.add_api_route(path + "/ready", _with_version(model_ready), methods=["GET"])
        router.add_api_route(path + "/infer", _with_request(infer), methods=["POST"])
    return router


def _with_version(handler: Any) -> Any:
    async def route(name: str, version: str | None = None) -> Response:
        result = handler(name, parse_version(version))
        return await result if hasattr(result, "__await__") else result
    return route


def _with_request(handler: TensorEndpoint) -> Any:
    async def route(request: Request, name: str, version: str | None = None) -> Response:
        return await handler(request, name, version, None)
    return route

