"""The engine processes of one server: started, watched, restarted, stopped.

Each engine is ``python -m serving.engine`` in a child process (its settings as JSON on
stdin, API keys left out; CUDA_VISIBLE_DEVICES set to its device), listening on an
ipc:// socket in a private run directory. An engine that dies while the server runs
is started again, at once the first time and after a growing pause (up to
``MAX_BACKOFF_S``) when it keeps dying soon after starting; it reloads its models, and
the front ends, which answered 503 meanwhile, reconnect by themselves. ``stop`` sends
SIGTERM and waits (its owner stops the front ends first).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from serving.config import Settings
from serving.engine.placement import device_environment, engine_devices
from serving.metrics import Metrics

log = logging.getLogger(__name__)
STABLE_S = 10.0  # an engine that ran this long before dying is restarted at once
MAX_BACKOFF_S = 30.0
_SECRET_SETTINGS = {"api_keys", "api_keys_file"}


class EngineGroup:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.devices = engine_devices(settings)
        self.run_dir = tempfile.mkdtemp(prefix="modelserve-engines-")
        self.addresses = [f"ipc://{self.run_dir}/engine-{i}.sock"
                          for i in range(len(self.devices))]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.devices)
        self.restarts = 0
        self._started_at = [0.0] * len(self.devices)
        self._failures = [0] * len(self.devices)
        self._due: list[float | None] = [None] * len(self.devices)
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def start(self) -> list[str]:
        for index in range(len(self.devices)):
            self._spawn(index)
        log.info("engines on %s: %s", ", ".join(self.devices), ", ".join(self.addresses))
        return self.addresses

    def _spawn(self, index: int) -> None:
        device = self.devices[index]
        env = os.environ | device_environment(device)
        argv = [sys.executable, "-m", "serving.engine", "--address", self.addresses[index],
                "--device", device]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
        assert proc.stdin is not None
        proc.stdin.write(self.settings.model_dump_json(exclude=_SECRET_SETTINGS).encode())
        proc.stdin.close()
        self.procs[index] = proc
        self._started_at[index] = time.monotonic()

    def check(self) -> None:
        """Restart engines that died (call it often; it returns at once)."""
        if self._stopping:
            return
        now = time.monotonic()
        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            due = self._due[index]
            if due is None:  # first sight of this death
                due = self._due[index] = self._died(index, proc, now)
            if now >= due:
                self._due[index] = None
                self.restarts += 1
                self._spawn(index)

    def _died(self, index: int, proc: subprocess.Popen[bytes], now: float) -> float:
        """Log the death; when to start the engine again."""
        Metrics.mark_process_dead(proc.pid)  # its live gauges stop counting
        ran = now - self._started_at[index]
        self._failures[index] = 0 if ran >= STABLE_S else self._failures[index] + 1
        pause = min(MAX_BACKOFF_S, 0.25 * 2 ** self._failures[index]) \
            if self._failures[index] > 1 else 0.0
        log.error("engine %d (device %s, pid %d) exited with status %s after %.1f s; "
                  "starting it again%s", index, self.devices[index], proc.pid, proc.returncode,
                  ran, f" in {pause:.1f} s" if pause else "")
        return now + pause

    def stop_restarting(self) -> None:
        """The server is stopping: an engine that exits now stays stopped."""
        self._stopping = True

    def stop(self, timeout_s: float) -> None:
        """SIGTERM every engine, wait up to ``timeout_s``, then kill what is left."""
        self._stopping = True
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("engine pid %d did not stop within %.1f s; killing it", proc.pid,
                            timeout_s)
                proc.kill()
                proc.wait(5)
        for pid in self.pids:
            Metrics.mark_process_dead(pid)
        shutil.rmtree(self.run_dir, ignore_errors=True)
