"""`modelserve predict` / `modelserve models` against a running server; import hygiene;
the retry policy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from clients._common import RetryPolicy
from clients.errors import ClientError
from serving.cli import main
from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.grpc.helpers import png

HEAVY = ("tensorflow", "fastapi", "onnxruntime", "starlette", "uvicorn")


def test_clients_import_no_server_or_training_stack():
    code = ("import sys, clients.rest, clients.grpc, clients.cli; "
            f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_retry_policy():
    policy = RetryPolicy(retries=2, backoff_s=0.1, max_backoff_s=0.15)
    overloaded = ClientError(503, "queue full")
    assert all(0 <= policy.delay(a, overloaded) <= 0.15 for a in range(2) for _ in range(50))
    assert policy.delay(2, overloaded) is None  # retries used up
    assert policy.delay(0, ClientError("UNAVAILABLE", "busy", retry_after=1.5)) == 1.5
    assert policy.delay(0, ClientError(400, "bad input")) is None
    assert policy.delay(0, ClientError("RESOURCE_EXHAUSTED",
                                       "Received message larger than max")) is None


async def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_cli_predict_and_models(full_server, tmp_path, capsys, transport):
    url = full_server.http_url if transport == "rest" else full_server.grpc_target
    common = ("--transport", transport, "--url", url)
    code, out, _ = await _cli(capsys, "predict", "text", "good fun", "awful", *common, "--json")
    assert code == 0
    answer = json.loads(out)
    assert [p["label"] for p in answer["predictions"]] == ["positive", "negative"]
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        [text_reference("good fun"), 1 - text_reference("awful")], rel=1e-5)

    image = tmp_path / "red.png"
    image.write_bytes(png((255, 0, 0)))
    code, out, _ = await _cli(capsys, "predict", "image", str(image), *common)
    p = image_reference(255, 0, 0)
    assert code == 0
    assert out.splitlines() == ["model image version 1",
                                f"{image}: sneaker ({p:.3f})  [ankle_boot {1 - p:.3f}]"]

    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), np.float32))
    code, out, _ = await _cli(capsys, "predict", "digit", str(digit), *common, "--top-k", "2")
    expected = digit_reference(np.zeros((1, 784), np.float32))[0]
    first, second = np.argsort(-expected)[:2]
    assert code == 0
    assert out.splitlines() == [
        "model digit version 1",
        f"{digit}: {first} ({expected[first]:.3f})  [{second} {expected[second]:.3f}]"]

    code, out, _ = await _cli(capsys, "models", *common)
    rows = [line.split() for line in out.splitlines()]
    assert code == 0 and rows[0] == ["MODEL", "VERSION", "STATE", "LABELS", "REASON"]
    assert sorted(rows[1:]) == [["digit", "1", "READY", "-"], ["image", "1", "READY", "-"],
                                ["text", "1", "READY", "-"]]

    code, out, err = await _cli(capsys, "predict", "text", "hi", *common, "--model", "nope")
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


async def test_console_script_as_a_user_runs_it(full_server):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "serving.cli", "predict", "text", "a great fun film",
        "--transport", "grpc", "--url", full_server.grpc_target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    p = text_reference("a great fun film")
    assert out.decode().splitlines() == ["model text version 1",
                                         f"a great fun film: positive ({p:.3f})  "
                                         f"[negative {1 - p:.3f}]"]
