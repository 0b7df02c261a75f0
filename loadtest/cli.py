"""`modelserve loadtest` and `modelserve bench`: cheap to import (Locust, ONNX Runtime and
matplotlib are imported only inside the handlers)."""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_MIX = "digit=4,text=3,image=2,tfserving=1,v2=1,grpc=1"


def _default_cpus() -> tuple[str, str]:
    """Server on the last CPU, load generator on the others (no pinning on one CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", ""
    return str(cpus[-1]), ",".join(map(str, cpus[:-1]))


def register(subparsers: Any) -> None:
    _register_loadtest(subparsers)
    _register_bench(subparsers)


def _pinning(p: argparse.ArgumentParser) -> None:
    server, client = _default_cpus()
    p.add_argument("--server-cpus", default=server,
                   help=f"CPUs for the server, e.g. 1 or 0-3 ('' = no pinning; default {server!r})")
    p.add_argument("--client-cpus", default=client,
                   help=f"CPUs for the load generator (default {client!r})")


def _register_loadtest(subparsers: Any) -> None:
    p = subparsers.add_parser("loadtest", help="run Locust against the server; write a report",
                              description="Start the server on the model repository (or target "
                              "--host), run Locust headless, write CSV/HTML/PNG/summary, and "
                              "exit 1 when failures or p99 exceed the limits.")
    p.add_argument("--model-repository", default=os.environ.get(
        "MODELSERVE_MODEL_REPOSITORY", "models"))
    p.add_argument("--host", default="", help="target a running server (http://127.0.0.1:8000)")
    p.add_argument("--grpc-target", default="127.0.0.1:8500", help="with --host: its gRPC port")
    p.add_argument("--users", "-u", type=int, default=8)
    p.add_argument("--spawn-rate", "-r", type=float, default=8.0)
    p.add_argument("--run-time", "-t", type=int, default=30, help="seconds (the run stops)")
    p.add_argument("--shape", choices=["constant", "step", "ramp", "arrival"],
                   default="constant")
    p.add_argument("--arrival-rate", type=float, default=50.0,
                   help="--shape arrival: requests/s over all users (open loop)")
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--step-users", type=int, default=4)
    p.add_argument("--step-seconds", type=float, default=10.0)
    p.add_argument("--max-users", type=int, default=0, help="step/ramp ceiling (default -u)")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"user weights (default {DEFAULT_MIX})")
    p.add_argument("--out", default="", help="report folder (default reports/loadtest-<time>)")
    p.add_argument("--max-failure-rate", type=float, default=0.0,
                   help="fraction of failed requests allowed (default 0)")
    p.add_argument("--max-p99-ms", type=float, default=None, help="p99 limit over all requests")
    p.add_argument("--startup-timeout", type=float, default=60.0)
    _pinning(p)
    p.set_defaults(func=_loadtest)


def _register_bench(subparsers: Any) -> None:
    from serving.config import Settings

    p = subparsers.add_parser("bench", help="raw ONNX Runtime ceiling vs served, per protocol",
                              description="Measure the in-process ONNX Runtime ceiling per model "
                              "and batch size, then the served throughput and latency per "
                              "protocol and concurrency, the plain-FastAPI baseline, startup and "
                              "RSS; print a table and write JSON and markdown.")
    p.add_argument("--model-repository", default=os.environ.get(
        "MODELSERVE_MODEL_REPOSITORY", "models"))
    p.add_argument("--models", default="digit,text,image")
    p.add_argument("--protocols", default="rest,tfserving,v2,grpc-tfserving,grpc-v2,grpc-stream",
                   help="served protocols (grpc-stream: v2 ModelStreamInfer, digit only)")
    p.add_argument("--concurrency", default="1,16,64", help="text and image points")
    p.add_argument("--compare-concurrency", default="1,64",
                   help="digit paths beside the naive app and the bare limits")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of the digit comparison (ratios per round)")
    p.add_argument("--no-limits", action="store_true",
                   help="skip the bare-stack limits (bare ASGI/RSGI, bare grpc.aio)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    default_http = Settings.model_fields["http_server"].default
    other_http = "uvicorn" if default_http == "granian" else "granian"
    p.add_argument("--http-server", choices=["granian", "uvicorn"], default=default_http,
                   help=f"the server's HTTP server (default {default_http}, the server's)")
    p.add_argument("--compare-http-server", default=other_http,
                   choices=["granian", "uvicorn", "none"],
                   help="also measure the digit REST paths on a second server running this "
                        f"HTTP server, in the same rounds (default {other_http})")
    p.add_argument("--batch-sizes", default="1,8,32,64")
    p.add_argument("--provider", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--no-baseline", action="store_true", help="skip the naive FastAPI app")
    p.add_argument("--paired-rounds", type=int, default=5,
                   help="image at saturation: rounds of ceiling then server, back to back")
    p.add_argument("--quick", action="store_true",
                   help="about a minute: digit only, one round, short runs, concurrency 1 "
                        "and 16")
    p.add_argument("--out", default="", help="output folder (default reports/bench-<time>)")
    _pinning(p)
    p.set_defaults(func=_bench)


def _loadtest(args: argparse.Namespace) -> int:
    from serving.cli import CLIError

    if not args.host and not os.path.isdir(args.model_repository):
        raise CLIError(f"model repository {args.model_repository!r} not found "
                       "(build it with `modelserve build-models` or pass --host)")
    from loadtest.run import run

    try:
        return run(args)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        raise CLIError(str(exc)) from exc


def _bench(args: argparse.Namespace) -> int:
    from serving.cli import CLIError

    if not os.path.isdir(args.model_repository):
        raise CLIError(f"model repository {args.model_repository!r} not found")
    from loadtest.bench import run

    try:
        return run(args)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
