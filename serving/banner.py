"""The line ``modelserve serve`` prints once ready: what serves, and where to find it."""

from __future__ import annotations

import socket

from serving.config import Settings
from serving.models.registry import ModelRegistry
from serving.models.states import ModelState


def _browsable(host: str) -> str:
    """An address a browser on this machine can open (a wildcard bind is not one)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def ready_banner(settings: Settings, registry: ModelRegistry, grpc_port: int | None,
                 sockets: list[socket.socket] | None = None) -> str:
    # The bound REST port: settings may say 0 when a socket is handed in.
    http_port = sockets[0].getsockname()[1] if sockets else settings.http_port
    models = ", ".join(f"{m.name} v{m.version}" for m in registry.models()
                       if m.state is ModelState.AVAILABLE) or "no models yet"
    base = f"http://{_browsable(settings.host)}:{http_port}"
    where = [f"playground {base}/"] if settings.playground else []
    where.append(f"API docs {base}/docs")
    if grpc_port is not None:
        where.append(f"gRPC {_browsable(settings.host)}:{grpc_port}")
    return f"ready: {models} | " + " | ".join(where)
