"""One error hierarchy for every protocol.

Each error carries its HTTP status and the *name* of its gRPC status code, so this
module imports neither web nor gRPC libraries. REST and gRPC translate them in
exactly one place each (serving/rest/errors.py, serving/grpc/errors.py).

``message`` is what the client reads: it says what was wrong with the request, in our
words. ``detail`` (optional) is what the operator reads: a library's message, a path,
the exception that caused it; the protocol's error translation logs it with the
request id and never sends it.
"""

from __future__ import annotations


class ServingError(Exception):
    http_status: int = 500
    grpc_code: str = "INTERNAL"
    # A refusal for capacity, counted by reason in modelserve_rejections_total.
    rejection: str | None = None

    def __init__(self, message: str, *, retry_after_s: float | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.detail = detail


class InvalidInput(ServingError):
    """The request or one of its items is malformed, of wrong shape or dtype."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class TooManyItems(InvalidInput):
    """More items in one request than the model's largest batch."""

    rejection = "too_large"


class PermissionDenied(ServingError):
    """Refused by the server's configuration (e.g. the management API is off), not retryable."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class ModelNotFound(ServingError):
    http_status = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServingError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    rejection = "too_large"


class UnsupportedMediaType(ServingError):
    http_status = 415
    grpc_code = "INVALID_ARGUMENT"


class ModelNotReady(ServingError):
    """The model exists but is loading, unloading, or failed to load."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class Overloaded(ServingError):
    """The batch queue is full: answered at once so clients can back off."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    rejection = "queue_full"

    def __init__(self, message: str, *, retry_after_s: float | None = 1.0,
                 detail: str | None = None) -> None:
        super().__init__(message, retry_after_s=retry_after_s, detail=detail)


class ShuttingDown(ServingError):
    http_status = 503
    grpc_code = "UNAVAILABLE"


class EngineUnavailable(ServingError):
    """Engine layout: the engine holding the model is gone (its supervisor restarts it);
    answered at once so clients retry, never left waiting."""

    http_status = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: float | None = 1.0,
                 detail: str | None = None) -> None:
        super().__init__(message, retry_after_s=retry_after_s, detail=detail)


class DeadlineExceeded(ServingError):
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    rejection = "deadline"


class InferenceFailed(ServingError):
    """The runtime raised while running a batch."""

    http_status = 500
    grpc_code = "INTERNAL"
