"""``modelserve serve --layout engine``: the engines, the front-end workers, their order.

The supervisor (the process ``modelserve serve`` started) starts one engine per device,
then ``workers`` front ends on the shared REST socket (gRPC with SO_REUSEPORT, as in
the per-worker layout), all writing their metrics to one PROMETHEUS_MULTIPROC_DIR, so
the engines' queue depths and batch sizes show in any front end's /metrics. While it
runs, an engine or a front end that dies is started again (a front end holds no
session, so it is back in about a second; the engine reloads its models). On
SIGTERM/SIGINT: the REST socket is closed here, the front ends drain (not ready, then
their requests finish) and exit, and only then are the engines stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from serving.config import Settings
from serving.engine.group import EngineGroup
from serving.metrics import Metrics
from serving.workers import STARTUP_FAILED

log = logging.getLogger(__name__)
SpawnWorker = Callable[[Settings, int], BaseProcess]


def run_engine_layout(settings: Settings, sock: socket.socket, spawn: SpawnWorker) -> int:
    """Engines first, then ``settings.workers`` front ends from ``spawn``; returns when
    everything stopped."""
    engines = EngineGroup(settings)
    settings = settings.model_copy(update={"layout": "engine",
                                           "engine_addresses": engines.addresses})
    engines.start()
    workers = [spawn(settings, i) for i in range(settings.workers)]
    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            log.info("stopping: front ends first, then the engines")
        stopping = True
        engines.stop_restarting()
        sock.close()  # new connections are refused once the front ends close theirs too
        for proc in workers:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        while not stopping or any(p.is_alive() for p in workers):
            engines.check()
            if not stopping and (failed := _restart_dead(workers, settings, spawn)):
                code = failed
                forward(signal.SIGTERM, None)
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in workers:
            if proc.pid is not None:
                Metrics.mark_process_dead(proc.pid)
        engines.stop(max(1.0, settings.shutdown_timeout_s))
        sock.close()
    return code or max((abs(p.exitcode or 0) for p in workers), default=0)


def _restart_dead(workers: list[BaseProcess], settings: Settings, spawn: SpawnWorker) -> int:
    """Start dead front ends again; a status to stop the server with when one could not
    start at all (a port taken), which a restart would not mend."""
    for i, proc in enumerate(workers):
        if proc.is_alive() or proc.exitcode is None:
            continue
        if proc.exitcode == STARTUP_FAILED:
            return STARTUP_FAILED
        log.error("front end %s (pid %s) exited with %s; starting it again", proc.name,
                  proc.pid, proc.exitcode)
        if proc.pid is not None:
            Metrics.mark_process_dead(proc.pid)
        workers[i] = spawn(settings, i)
    return 0
