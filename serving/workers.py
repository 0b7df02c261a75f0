"""Several server processes on one port: each with its own sessions, metrics merged
(or, in the engine layout, front ends of engine processes: serving/engine/supervisor.py).

The parent binds the REST socket once and hands it to N spawned workers (the
kernel spreads connections among them); gRPC binds the same port in each worker
with SO_REUSEPORT (grpc's default on Linux). PROMETHEUS_MULTIPROC_DIR points to a
fresh directory so /metrics in any worker reports the sum over all of them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from serving.config import Settings
from serving.engine.placement import runs_engines

logger = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if ":" not in host else "127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTUP_FAILED = 2  # a worker that cannot start (a port taken): the server stops too


def _worker(settings: Settings, sock: socket.socket, log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    from serving.server import StartupError, run_process

    try:
        code = run_process(settings, sockets=[sock])
    except StartupError as exc:
        logger.error("%s", exc)  # one clear line, as the single-process server prints it
        code = STARTUP_FAILED
    raise SystemExit(code)


def _spawn(sock: socket.socket) -> Callable[[Settings, int], BaseProcess]:
    context = multiprocessing.get_context("spawn")

    def spawn(settings: Settings, index: int) -> BaseProcess:
        proc = context.Process(target=_worker, args=(settings, sock, settings.log_level),
                               name=f"modelserve-worker-{index}")
        proc.start()
        return proc
    return spawn


def run_workers(settings: Settings, sock: socket.socket) -> int:
    """Start ``settings.workers`` processes on the bound REST socket ``sock``, forward
    SIGTERM/SIGINT, wait for them. In the engine layout they are front ends of engines
    started first (serving/engine/supervisor.py)."""
    updates: dict[str, Any] = {"http_port": sock.getsockname()[1]}
    if settings.grpc_port == 0:
        updates["grpc_port"] = free_port(settings.host)
    settings = settings.model_copy(update=updates)
    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = tempfile.mkdtemp(prefix="modelserve-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    logger.info("starting %d workers on port %d (gRPC %d)", settings.workers,
                settings.http_port, settings.grpc_port)
    try:
        if runs_engines(settings):
            from serving.engine.supervisor import run_engine_layout

            return run_engine_layout(settings, sock, _spawn(sock))
        spawn = _spawn(sock)
        procs = [spawn(settings, i) for i in range(settings.workers)]
        sock.close()  # each worker holds its own copy; none kept here once they stop listening
        return _supervise(procs)
    finally:
        sock.close()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _supervise(procs: Sequence[BaseProcess]) -> int:
    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while any(p.is_alive() for p in procs):
            for proc in procs:
                if not proc.is_alive() and proc.exitcode not in (None, 0) and not stopping:
                    logger.error("%s exited with %s; stopping the others", proc.name,
                                 proc.exitcode)
                    forward(signal.SIGTERM, None)
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    from serving.metrics import Metrics

    for proc in procs:
        if proc.pid is not None:
            Metrics.mark_process_dead(proc.pid)
    return max((abs(p.exitcode or 0) for p in procs), default=0)
