"""The uvicorn internals the connection limits and the hot lane rely on (a private API:
this fails when a uvicorn release moves them), and the body budget's arithmetic."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http import httptools_impl

from serving.config import Settings
from serving.rest.connection_limits import ConnectionLimits, _declared_body


def test_uvicorn_internals_are_where_we_subclass_them() -> None:
    protocol = httptools_impl.HttpToolsProtocol
    for name in ("_start_asgi_task", "on_headers_complete", "on_message_complete",
                 "data_received", "connection_made", "connection_lost", "eof_received"):
        assert callable(getattr(protocol, name)), name
    assert list(inspect.signature(protocol._start_asgi_task).parameters) == [
        "self", "cycle", "app"]
    cycle = inspect.signature(httptools_impl.RequestResponseCycle.__init__).parameters
    assert {"scope", "transport", "message_event", "on_response"} <= set(cycle)
    source = inspect.getsource(httptools_impl.RequestResponseCycle)
    for attribute in ("self.response_started", "self.response_complete",
                      "self.disconnected", "self.message_event"):
        assert attribute in source, attribute
    assert 408 in httptools_impl.STATUS_LINE and 431 in httptools_impl.STATUS_LINE
    # The 503 uvicorn answers past limit_concurrency, which health is let past.
    assert "service_unavailable" in inspect.getsource(protocol.on_headers_complete)


def test_body_budget_counts_declared_lengths_and_chunked_bodies_at_the_limit() -> None:
    limits = ConnectionLimits(Settings(max_body_bytes_in_flight=3000, max_request_bytes=2000))
    assert limits.admit([(b"content-length", b"1000")], 10) == (10 + 14 + 4 + 4, 1000)
    assert limits.admit([(b"transfer-encoding", b"chunked")], 0)[1] == 2000
    assert limits.admit([(b"content-length", b"1")], 0)[1] is None  # full
    assert limits.admit([], 0) == (0, 0)  # no body: always admitted
    limits.release_body(2000)
    assert limits.admit([(b"content-length", b"2000")], 0)[1] == 2000
    assert limits.admit([(b"content-length", b"x1")], 0)[1] == 0  # the gateway says 413
    assert _declared_body([(b"content-length", b"5")]) and not _declared_body(
        [(b"content-length", b"0")])
