"""`make serve`'s first run (scripts/serve.sh) for real, with --quick training sizes: digit
and text first, the server up, the image model trained in the background and loaded
without a restart; a later run serves at once. Slow: it trains three small models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import REPO_ROOT, free_port

pytestmark = pytest.mark.slow
SCRIPT = REPO_ROOT / "scripts" / "serve.sh"


class Run:
    def __init__(self, models: Path, log: Path) -> None:
        self.http, self.grpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.log = log
        env = os.environ | {
            "BIN": str(Path(sys.executable).parent), "MODELS": str(models),
            "HTTP_PORT": str(self.http), "GRPC_PORT": str(self.grpc),
            "REPOSITORY_POLL_S": "0.5", "BUILD_ARGS": "--quick --no-evaluate",
            "PYTHONPATH": str(REPO_ROOT), "MODELSERVE_HOST": "127.0.0.1",
            "MODELSERVE_WARMUP_BATCH_SIZES": "[1]", "MODELSERVE_DRAIN_SECONDS": "0"}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(["bash", str(SCRIPT)], cwd=REPO_ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, path: str, timeout_s: float, **request: object) -> float:
        """Seconds until ``path`` answers 200 (POST when a body is given)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            assert self.proc.poll() is None, self.output()
            try:
                method = "POST" if request else "GET"
                if httpx.request(method, self.url + path, timeout=2, **request).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{path} not answering after {timeout_s} s:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C does to make serve
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def test_first_run_answers_early_resumes_and_then_serves_at_once(
        tmp_path: Path, runs: list[Run]) -> None:
    models = tmp_path / "models"
    # 1. A fresh repository: digit and text first, then serving while the image trains.
    first = Run(models, tmp_path / "first.log")
    runs.append(first)
    first.wait_for("/v1/text:predict", 600, json={"text": "a gripping film"})
    assert (models / ".first-run").exists()
    out = first.output()
    assert "building digit and text first" in out
    assert "[digit]" in out and "[text]" in out  # built side by side, lines labelled
    assert "image model: training in the background" in out
    assert f"ready: digit v1, text v1 | playground http://127.0.0.1:{first.http}/" in out, out

    # 2. Stopped (Ctrl-C) before the image is published: the build stops with it.
    first.stop()
    assert "stopping the image build" in first.output()
    assert not list(models.glob("image/*/manifest.json"))
    builders = subprocess.run(["pgrep", "-f", f"build-models --out {models} --only image"],
                              capture_output=True, text=True)
    assert builders.stdout.strip() == "", "the background build outlived make serve"

    # 3. The next run serves at once and trains the image again; loaded without a restart.
    second = Run(models, tmp_path / "second.log")
    runs.append(second)
    assert second.wait_for("/v1/digit:predict", 60, json={"input": [0] * 784}) < 30
    assert "[digit]" not in second.output()  # nothing rebuilt
    second.wait_for("/v2/models/image/ready", 600)
    assert "model image version 1 AVAILABLE" in second.output()
    deadline = time.monotonic() + 30
    while "image model published" not in second.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "image model published" in second.output()
    assert not (models / ".first-run").exists()
    second.stop()

    # 4. Everything present: no training at all.
    third = Run(models, tmp_path / "third.log")
    runs.append(third)
    assert third.wait_for("/v1/digit:predict", 60, json={"input": [0] * 784}) < 30
    assert "make serve:" not in third.output()
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == \
        ["digit", "image", "text"]
