"""Schemathesis over the server's own OpenAPI schema: every REST operation, generated
inputs (bounded by max_examples), against the real ``python -m serving`` process.
No answer may be a 5xx, and the server must stay up with no unhandled error logged.

Coverage counts only requests actually sent: in positive mode every operation of the
schema must be called (an operation Hypothesis cannot generate for fails the test); in
negative mode an operation may have nothing to make invalid (all its inputs optional
and unconstrained), and only those are excused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.fixtures.servers import REPO_ROOT, free_port
from tests.fixtures.tiny_models import write_default_models

MAX_EXAMPLES = int(os.environ.get("MODELSERVE_FUZZ_EXAMPLES", "30"))
# Requests sent, per mode: "METHOD /path" -> Counter of status codes.
SENT: dict[str, dict[str, Counter[int]]] = {"positive": {}, "negative": {}}
NOTHING_TO_NEGATE: set[str] = set()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    repository = write_default_models(root / "models")
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--model-repository", str(repository),
             "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "-1",
             "--warmup-batch-sizes", "1", "--drain-seconds", "0"],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _name(operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _fuzz_operation(operation, url: str, mode) -> None:
    """Hypothesis drives one operation: ``max_examples`` generated requests."""
    statuses = SENT[mode.value].setdefault(_name(operation), Counter())

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call(base_url=url, timeout=20)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (case.as_curl_command(), response.text[:300])
    run()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_operation_answers_5xx(fuzz_server, mode: str) -> None:
    """Every operation in the schema, with valid (positive) and invalid (negative) data.
    (Schemathesis' lazy pytest loader touches a pytest internal removed in pytest 9,
    so its strategies are driven here directly.)"""
    from schemathesis import GenerationMode

    url, _ = fuzz_server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the schema lists the whole API
    for operation in operations:
        if mode == "positive":
            _fuzz_operation(operation, url, GenerationMode.POSITIVE)
            continue
        try:
            _fuzz_operation(operation, url, GenerationMode.NEGATIVE)
        except Unsatisfiable:  # nothing about this operation's inputs can be made invalid
            NOTHING_TO_NEGATE.add(_name(operation))
    called = {name for name, statuses in SENT[mode].items() if sum(statuses.values()) > 0}
    excused = NOTHING_TO_NEGATE if mode == "negative" else set()
    assert {_name(op) for op in operations} - called - excused == set()


@pytest.mark.slow
def test_fuzzing_left_the_server_healthy(fuzz_server, report) -> None:
    url, log = fuzz_server
    live = httpx.get(f"{url}/v2/health/live", timeout=5).status_code
    ready = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code
    text = log.read_text(errors="replace")
    unhandled = text.count("Traceback") + text.count("Exception in ASGI application")
    by_status: Counter[int] = Counter()
    for per_operation in SENT.values():
        for statuses in per_operation.values():
            by_status.update(statuses)
    called = {mode: sorted(name for name, statuses in per_operation.items() if statuses)
              for mode, per_operation in SENT.items()}
    report("tried", operations_called={m: len(names) for m, names in called.items()},
           requests=sum(by_status.values()), max_examples=MAX_EXAMPLES,
           nothing_to_negate=sorted(NOTHING_TO_NEGATE))
    report("happened", by_status=dict(sorted(by_status.items())), live=live, ready=ready,
           unhandled_errors_logged=unhandled)
    assert called["positive"], "runs after test_no_operation_answers_5xx in the same session"
    assert live == 200 and ready == 200 and unhandled == 0
    assert not any(status >= 500 for status in by_status)
