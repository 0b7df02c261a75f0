"""The generated stubs and the gRPC client run on protobuf 6 as well as the installed 7
(with warnings as errors).

The generated code comes from protobuf 4.25's generator, which has no runtime
major-version check; this runs it for real on protobuf 6 in a separate process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys, numpy as np
import google.protobuf
from clients.grpc import Client
from serving.grpc.generated.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from serving.grpc.generated import grpc_predict_v2_pb2
with Client(sys.argv[1], timeout=10) as client:
    out = client.infer("digit", {"pixels": np.zeros((2, 784), np.float32)})
    text = client.predict_text(["good fun"])
print(google.protobuf.__version__, out["probabilities"].shape, text.predictions[0].label)
"""


def _protobuf6(tmp_path: Path) -> Path:
    """The side folder `make test` installs; otherwise install one for this test."""
    folder = Path(sys.prefix) / "protobuf6"
    if not (folder / "google" / "protobuf").is_dir():
        folder = tmp_path / "protobuf6"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(folder), "protobuf>=6.31,<7"], check=True, timeout=300)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["protobuf6", "installed"])
async def test_stubs_and_client_run_on_protobuf_6_and_7(grpc_app, tmp_path, runtime):
    path = [str(_protobuf6(tmp_path))] if runtime == "protobuf6" else []
    env = os.environ | {"PYTHONPATH": os.pathsep.join([*path, str(REPO_ROOT)])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-W", "error", "-c", SCRIPT, grpc_app.target, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    assert proc.returncode == 0, text
    version, rest = text.strip().splitlines()[-1].split(" ", 1)
    import google.protobuf

    expected = "6." if runtime == "protobuf6" else google.protobuf.__version__
    assert version.startswith(expected)
    assert rest == "(2, 10) positive"
