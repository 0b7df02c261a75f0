"""Task endpoints for apps: ``/v1/{task}:predict`` for every registered task → labels and
probabilities.

Each route reads the body by its content type (payloads.py) and hands it to the task
plug-in (serving/tasks/), which says what its items are; the dataplane counts them,
unwraps each as the task says, and decodes them with the model's task.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from serving.config import Settings
from serving.dataplane import DataPlane, TaskResult
from serving.rest.body import (
    check_json_cost,
    json_response,
    media_type,
    query_int,
    request_deadline,
)
from serving.rest.hot_asgi import Endpoint
from serving.rest.json_tensors import numeric_field
from serving.rest.payloads import read_payload
from serving.routing import KEY_PARAMETER, LABEL_PARAMETER, ROUTING_KEY_HEADER, VERSION_HEADER
from serving.tasks import TASKS, Task
from serving.versions import parse_version

PROTOCOL = "rest"


def task_path(task: Task) -> str:
    return f"/v1/{task.name}:predict"


async def numbers_items(request: Request, task: Task) -> list[Any] | None:
    """The items of a JSON body that is one of the task's ``number_keys`` holding a regular
    array of numbers, read by simdjson into one float64 array without a Python float each;
    None for any other body, which the general path reads (and refuses, when it must)."""
    if media_type(request) not in ("", "application/json"):
        return None
    body = await request.body()
    check_json_cost(body)  # the same limits as the general parse
    found = numeric_field(body, task.number_keys)
    return None if found is None else task.number_items(*found)


def endpoints(dataplane: DataPlane, settings: Settings) -> dict[str, Endpoint]:
    """The task endpoints by path; served by the hot lanes and documented by FastAPI."""

    def options(request: Request) -> dict[str, Any]:
        # Most requests have no query string: skip parsing one.
        query = request.query_params if request.scope.get("query_string") else {}
        return {"model": query.get("model") or None,
                "version": parse_version(query.get("version")),
                "label": query.get(LABEL_PARAMETER) or None,
                "routing_key": (query.get(KEY_PARAMETER)
                                or request.headers.get(ROUTING_KEY_HEADER)),
                "top_k": query_int(query, "top_k"), "protocol": PROTOCOL,
                "deadline": request_deadline(request, settings.request_timeout_s)}

    def answered(result: TaskResult) -> Response:
        response = json_response(result.to_dict())
        response.headers[VERSION_HEADER] = str(result.model_version)
        return response

    def endpoint(task: Task) -> Endpoint:
        name, unwrap = task.name, task.rest_item

        async def predict(request: Request) -> Response:
            items = await numbers_items(request, task) if task.number_keys else None
            if items is None:
                items = task.request_items(await read_payload(request))
            result = await dataplane.predict(name, items, unwrap=unwrap, **options(request))
            return answered(result)
        # FastAPI names the operation after the function: "Predict Digit", say.
        predict.__name__ = predict.__qualname__ = f"predict_{name}"
        predict.__doc__ = task.summary
        return predict

    return {task_path(task): endpoint(task) for task in TASKS}


def build_router(routes: dict[str, Endpoint]) -> APIRouter:
    router = APIRouter(tags=["tasks"])
    examples = {task_path(task): task.rest_example for task in TASKS}
    for path, endpoint in routes.items():
        router.add_api_route(path, endpoint, methods=["POST"], openapi_extra={
            "requestBody": {"content": {"application/json": {"example": examples[path]}}}})
    return router
