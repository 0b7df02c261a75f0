"""``modelserve serve``: one flag per Settings field (flags override MODELSERVE_* variables)."""

from __future__ import annotations

import argparse
import json
import logging
import types
import typing
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _flag_kwargs(name: str, annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args: tuple[Any, ...] = tuple(a for a in typing.get_args(annotation)
                                  if a is not type(None))
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        annotation, origin, args = args[0], typing.get_origin(args[0]), typing.get_args(args[0])
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"choices": list(args)}
    if origin is list:  # comma-separated on the command line
        item = args[0] if args else str
        return {"type": lambda s, t=item: [t(v.strip()) for v in s.split(",") if v.strip()]}
    if origin is dict:
        return {"type": json.loads}
    if annotation in (int, float, str, Path):
        return {"type": annotation}
    return {"type": str}


def register(subparsers: argparse._SubParsersAction) -> None:
    from serving.config import Settings

    parser = subparsers.add_parser(
        "serve", help="serve a model repository over REST and gRPC",
        description="Serve models over REST (task, TF Serving, v2) and gRPC. Every flag is "
                    "also an environment variable MODELSERVE_<FLAG>; flags win.")
    for name, field in Settings.model_fields.items():
        kwargs = _flag_kwargs(name, field.annotation)
        help_text = field.description or ""
        if typing.get_origin(field.annotation) is list:
            help_text += " (comma-separated)"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"serve_{name}",
                            metavar=name.upper(), default=argparse.SUPPRESS,
                            help=help_text or None, **kwargs)
    parser.set_defaults(func=serve)


def settings_from_args(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from serving.cli import CLIError
    from serving.config import Settings

    overrides = {k.removeprefix("serve_"): v for k, v in vars(args).items()
                 if k.startswith("serve_")}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CLIError(f"invalid setting {where}: {first['msg']}") from exc
    if not Path(settings.model_repository).is_dir():
        raise CLIError(f"model repository {settings.model_repository} is not a folder "
                       f"(build the default models with `modelserve build-models`)")
    check_api_keys(settings)
    return settings


def check_api_keys(settings: Any) -> None:
    """The keys file must be readable; with require_api_keys, some key must be set."""
    from serving.auth import load_api_keys
    from serving.cli import CLIError

    try:
        keys = load_api_keys(settings)
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read the API keys file {settings.api_keys_file}: "
                       f"{getattr(exc, 'strerror', None) or exc}") from exc
    if settings.require_api_keys and not keys:
        raise CLIError("no API key is configured (MODELSERVE_API_KEYS or the file named by "
                       "MODELSERVE_API_KEYS_FILE) and MODELSERVE_REQUIRE_API_KEYS is set: "
                       "refusing to serve without keys (set it to false to run an open "
                       "server on purpose)")


def serve(args: argparse.Namespace) -> int:
    from serving.cli import CLIError
    from serving.workers import bind_socket

    settings = settings_from_args(args)
    logging.getLogger().setLevel(settings.log_level.upper())
    # The REST port is taken before any model loads, so a clash fails at once and plainly.
    try:
        sock = bind_socket(settings.host, settings.http_port)
    except OSError as exc:
        raise CLIError(f"cannot listen on {settings.host}:{settings.http_port}: "
                       f"{exc.strerror or exc}") from exc
    from serving.engine.placement import runs_engines

    # Engines of its own always come with a supervisor: engines, front ends, their order.
    if settings.workers > 1 or runs_engines(settings):
        from serving.workers import run_workers

        return run_workers(settings, sock)
    from serving.server import StartupError, run_process

    try:
        return run_process(settings, sockets=[sock])
    except StartupError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        sock.close()
