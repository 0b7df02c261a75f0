"""The CLI's normal output is its own: no library log lines among the results."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.fixtures.servers import REPO_ROOT


async def modelserve(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "serving.cli", *args, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)})
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


async def test_models_and_predict_print_only_their_answer(live_server) -> None:
    code, out = await modelserve("models", "--url", live_server)
    assert code == 0, out
    assert out.splitlines()[0].split() == ["MODEL", "VERSION", "STATE", "LABELS", "REASON"]
    assert "HTTP Request" not in out and " INFO " not in out, out
    code, out = await modelserve("predict", "text", "good fun", "--url", live_server)
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0] == "model text version 1", out
    assert lines[1].startswith("good fun: positive"), out


async def test_debug_logging_still_shows_library_lines(live_server) -> None:
    code, out = await modelserve("--log-level", "debug", "models", "--url", live_server)
    assert code == 0 and "HTTP Request: POST" in out, out
