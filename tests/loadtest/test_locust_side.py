"""Runs the tests that import Locust in a separate pytest process (see conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.loadtest.conftest import LOCUST_SIDE_ENV

HERE = Path(__file__).parent


def test_locust_side_tests_pass_in_their_own_process():
    env = {**os.environ, LOCUST_SIDE_ENV: "1"}
    # gevent patches first, as Locust's own launcher does: the shared fixtures import
    # ssl and sockets before Locust would otherwise patch them (RecursionError).
    args = ["-q", "-p", "no:cacheprovider", str(HERE / "locust_side")]
    script = ("from gevent import monkey; monkey.patch_all()\n"
              f"import sys, pytest\nsys.exit(pytest.main({args!r}))")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300, check=False, cwd=HERE.parents[1])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "no tests ran" not in done.stdout
    # Skips there would not reach this session's skip list: none are allowed.
    assert "skipped" not in done.stdout, done.stdout[-2000:]
