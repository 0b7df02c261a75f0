"""The one exception both clients raise: the server's status and its own message."""

from __future__ import annotations

RETRY_HTTP = frozenset({429, 503})
RETRY_GRPC = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})


class ClientError(Exception):
    """``status`` is the HTTP status (int; 0 when no answer came) or the gRPC status
    code name (str).

    ``retry_after`` is the server's Retry-After (seconds) when it sent one.
    """

    def __init__(self, status: int | str, message: str, *, retry_after: float | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Overload answers (429/503, RESOURCE_EXHAUSTED/UNAVAILABLE), not oversize ones;
        a REST connection that could not be made (status 0) too."""
        if self._retryable is not None:
            return self._retryable
        if isinstance(self.status, int):
            return self.status in RETRY_HTTP
        return self.status in RETRY_GRPC and "larger than max" not in self.message


def parse_retry_after(value: str | bytes | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return max(0.0, seconds)
