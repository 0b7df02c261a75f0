"""Which POST paths the hot lanes answer, without FastAPI's router.

The task endpoints are exact paths; the tensor predict routes carry the model's name
and version in the path, as FastAPI declares them:

- TF Serving: ``/v1/models/{name}:predict``, ``/v1/models/{name}/versions/{v}:predict``,
  ``/v1/models/{name}/labels/{label}:predict``;
- Open Inference Protocol v2: ``/v2/models/{name}/infer``,
  ``/v2/models/{name}/versions/{v}/infer``.

A name or a version is one path segment (no "/"), as FastAPI's ``{name}`` matches;
anything else is left to FastAPI, which answers it (404 included) as it always has.
Matching splits strings: no regular expression per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]
# (request, model name, version segment or None, label segment or None) -> response
TensorEndpoint = Callable[[Request, str, str | None, str | None], Awaitable[Response]]

TFS_PREFIX, TFS_SUFFIX = "/v1/models/", ":predict"
V2_PREFIX, V2_SUFFIX = "/v2/models/", "/infer"


class HotRoutes:
    def __init__(self, exact: Mapping[str, Endpoint], *, tfserving: TensorEndpoint | None = None,
                 v2: TensorEndpoint | None = None) -> None:
        self.exact = dict(exact)
        self.tfserving = tfserving
        self.v2 = v2

    def match(self, path: str) -> Endpoint | None:
        """The endpoint for a POST to ``path``, its path parameters bound; None: FastAPI's."""
        endpoint = self.exact.get(path)
        if endpoint is not None:
            return endpoint
        if self.tfserving is not None and path.startswith(TFS_PREFIX) and \
                path.endswith(TFS_SUFFIX):
            return _bound(self.tfserving, path[len(TFS_PREFIX):-len(TFS_SUFFIX)],
                          labels=True)
        if self.v2 is not None and path.startswith(V2_PREFIX) and path.endswith(V2_SUFFIX):
            return _bound(self.v2, path[len(V2_PREFIX):-len(V2_SUFFIX)], labels=False)
        return None


def _bound(endpoint: TensorEndpoint, middle: str, *, labels: bool) -> Endpoint | None:
    """``name``, ``name/versions/v`` or (``labels``) ``name/labels/l``; else None."""
    parts = middle.split("/")
    if not all(parts):
        return None
    if len(parts) == 1:
        name, version, label = parts[0], None, None
    elif len(parts) == 3 and parts[1] == "versions":
        name, version, label = parts[0], parts[2], None
    elif len(parts) == 3 and parts[1] == "labels" and labels:
        name, version, label = parts[0], None, parts[2]
    else:
        return None

    def bound(request: Request) -> Awaitable[Response]:
        return endpoint(request, name, version, label)
    return bound
