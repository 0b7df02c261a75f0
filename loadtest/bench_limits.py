"""The digit paths beside their limits, measured in interleaved rounds.

Every served digit path (task endpoint, TF Serving and v2 REST with ints and floats;
gRPC Predict, ModelInfer and ModelStreamInfer) is measured next to:

- the naive app (loadtest/baseline_app.py: FastAPI, one ONNX Runtime call per request)
  with the same payload;
- its bare limit, the same work with nothing of ours around it: bare ASGI under
  uvicorn and bare RSGI under granian (loadtest/bare_http.py), bare grpc.aio unary and
  bidirectional streaming (loadtest/bare_grpc.py).

All these processes run at once, pinned to the server's CPUs (idle ones cost nothing),
and the same client measures them one after another. A shared machine's speed drifts
by tens of percent within a minute, so the ratios the targets read are taken within
rounds: each round measures every point once, in an order that keeps each served path
next to its limit, and the table keeps every round's figure beside their mean.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from argparse import Namespace
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import bench_requests, grpc_client
from loadtest.bench_measure import Row, Sample, http_coro, row, sample
from loadtest.bodies import DIGIT_PAYLOADS
from loadtest.server_process import ChildProcess, free_port, grpc_ready, modelserve_server

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """One point of the comparison: which process, which request."""

    protocol: str  # the row's label: rest, naive, bare-asgi, grpc-v2, bare-grpc-infer, ...
    payload: str  # ints, floats (JSON); tensor_content, contents, raw (gRPC)
    process: str  # modelserve, modelserve@<other HTTP server>, naive, bare-asgi, bare-rsgi, ...
    served_as: str  # the protocol whose requests it sends (rest, grpc-v2, ...)


# The bare process and row label that bound each served protocol.
GRPC_LIMITS = {"grpc-tfserving": "bare-grpc-predict", "grpc-v2": "bare-grpc-infer",
               "grpc-stream": "bare-grpc-stream"}
HTTP_LIMITS = ("bare-asgi", "bare-rsgi")


def probes(protocols: list[str], *, naive: bool, limits: bool, rsgi: bool,
           other_http: str = "") -> list[Probe]:
    """Every point, each served path right after the paths it is compared with; with
    ``other_http``, each REST path also on a second server running that HTTP server."""
    out: list[Probe] = []
    for payload in DIGIT_PAYLOADS:
        if naive:
            out.append(Probe("naive", payload, "naive", "rest"))
        if limits:
            out += [Probe(p, payload, p, "rest") for p in HTTP_LIMITS if rsgi or p == "bare-asgi"]
        for p in [p for p in bench_requests.HTTP_PROTOCOLS if p in protocols]:
            out.append(Probe(p, payload, "modelserve", p))
            if other_http:
                out.append(Probe(f"{p}@{other_http}", payload, f"modelserve@{other_http}", p))
    for protocol, limit in GRPC_LIMITS.items():
        if protocol not in protocols:
            continue
        for payload in bench_requests.GRPC_PAYLOADS[protocol]:
            if limits:
                out.append(Probe(limit, payload, "bare-grpc", protocol))
            out.append(Probe(protocol, payload, "modelserve", protocol))
    return out


@dataclass
class Running:
    """A started process and its ports (0 where it has none)."""

    process: ChildProcess
    http_port: int = 0
    grpc_port: int = 0


def model_file(repository: Path) -> Path:
    from serving.models.manifest import list_versions, read_manifest

    version_dir = repository / "digit" / str(list_versions(repository / "digit")[-1])
    return version_dir / read_manifest(version_dir).model_file


def start_other_server(stack: ExitStack, cfg: Namespace, name: str) -> Running:
    """modelserve again, REST only, on the HTTP server named after the "@"."""
    port = free_port()
    server = modelserve_server(cfg.repository, port, -1, cpus=cfg.server_cpus,
                               log_path=cfg.out / f"server-{name}.log",
                               env={**cfg.server_env, "MODELSERVE_HTTP_SERVER":
                                    name.split("@", 1)[1]})
    stack.enter_context(server.start(timeout_s=120))
    return Running(server, http_port=port)


def start_limits(stack: ExitStack, cfg: Namespace, names: set[str]) -> dict[str, Running]:
    """Start the naive app, the bare limits and the other server that ``names`` ask for."""
    common = ["--model", str(model_file(cfg.repository)), "--threads", str(cfg.threads)]
    running = {}
    for name in sorted(names):
        if name.startswith("modelserve@"):
            running[name] = start_other_server(stack, cfg, name)
            continue
        port = free_port()
        module = {"naive": "loadtest.baseline_app", "bare-grpc": "loadtest.bare_grpc"}.get(
            name, "loadtest.bare_http")
        argv = [sys.executable, "-m", module, "--port", str(port), *common]
        if module == "loadtest.bare_http":
            argv += ["--server", "uvicorn" if name == "bare-asgi" else "granian"]
        if name == "bare-grpc":
            child = ChildProcess(argv, ready_check=grpc_ready(f"127.0.0.1:{port}"),
                                 cpus=cfg.server_cpus, log_path=cfg.out / f"{name}.log")
            running[name] = Running(child, grpc_port=port)
        else:
            child = ChildProcess(argv, ready_url=f"http://127.0.0.1:{port}/ready",
                                 cpus=cfg.server_cpus, log_path=cfg.out / f"{name}.log")
            running[name] = Running(child, http_port=port)
        stack.enter_context(child.start(timeout_s=60))
    return running


def _requests(probe: Probe, cfg: Namespace, http_port: int) -> list[Any]:
    """The probe's prepared requests (the served server's metadata names the input)."""
    if probe.served_as in bench_requests.GRPC_PROTOCOLS:
        return bench_requests.grpc_calls(probe.served_as, "digit", http_port, cfg.repository,
                                         probe.payload)
    return bench_requests.http_bodies(probe.served_as, "digit", http_port, cfg.repository,
                                      probe.payload)


def _coro(probe: Probe, target: Running, requests: list[Any], conc: int,
          duration: float) -> Any:
    if probe.served_as in bench_requests.GRPC_PROTOCOLS:
        return grpc_client.run_closed_loop(f"127.0.0.1:{target.grpc_port}", requests,
                                           concurrency=conc, duration_s=duration)
    return http_coro(target.http_port, requests, conc, duration)


def compare(cfg: Namespace, server: ChildProcess, http_port: int, grpc_port: int) -> list[Row]:
    """Start the naive app and the limits, measure every probe in ``cfg.rounds`` rounds."""
    rsgi = importlib.util.find_spec("granian") is not None
    points = probes(cfg.protocols, naive=cfg.baseline, limits=cfg.limits, rsgi=rsgi,
                    other_http=cfg.compare_http_server)
    samples: dict[tuple[str, str, str, int], list[Sample]] = {}
    with ExitStack() as stack:
        running = start_limits(stack, cfg, {p.process for p in points} - {"modelserve"})
        running["modelserve"] = Running(server, http_port, grpc_port)
        requests = {p: _requests(p, cfg, http_port) for p in points}
        for round_ in range(cfg.rounds):
            log.info("digit paths and their limits: round %d of %d", round_ + 1, cfg.rounds)
            for conc in cfg.compare_concurrency:
                for p in points:
                    target = running[p.process]
                    coro = _coro(p, target, requests[p], conc, cfg.duration)
                    samples.setdefault(("digit", p.protocol, p.payload, conc), []).append(
                        sample(coro, target.process))
    return [row(label, s) for label, s in samples.items()]
