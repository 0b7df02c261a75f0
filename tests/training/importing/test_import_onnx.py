"""`modelserve import` of an ONNX file made with onnx.helper (no TensorFlow anywhere):
the manifest it writes, then the model served and called with TF Serving REST and
Triton's own clients (HTTP and gRPC), against ONNX Runtime's outputs. Bad paths end
with one line and exit status 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from serving.cli import main
from serving.models.manifest import list_versions, read_manifest, sha256_file
from tests.fixtures.generic_models import multi_io_inputs, multi_io_model, ort_reference
from tests.fixtures.servers import REPO_ROOT
from tests.training.importing.protocols import assert_close, tf_rest, triton

pytest.importorskip("onnxruntime")
# Runs the import the way a user does, then proves TensorFlow was never imported.
IMPORT_SCRIPT = """
import sys
from serving.cli import main
status = main(["import", *sys.argv[1:]])
assert "tensorflow" not in sys.modules, "TensorFlow was imported for an ONNX file"
sys.exit(status)
"""
SIGNATURE = "predict"


def run_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def onnx_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx_source") / "multi_io.onnx"
    onnx.save(multi_io_model(), path)
    return path


@pytest.fixture(scope="module")
def imported_repository(onnx_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("imported") / "models"
    done = run_import(str(onnx_source), "--repository", str(repository), "--signature",
                      SIGNATURE)
    assert done.returncode == 0, done.stderr
    assert f"as {repository / 'multi_io' / '1'}" in done.stdout
    return repository


@pytest.fixture
def tiny_model_repository(imported_repository: Path) -> Path:
    """full_server serves the imported repository (overrides the shared fixture)."""
    return imported_repository


def test_the_manifest_holds_the_graph_signature_and_provenance(imported_repository,
                                                                onnx_source):
    version_dir = imported_repository / "multi_io" / "1"
    manifest = read_manifest(version_dir)
    assert manifest.task is None and manifest.signature_name == SIGNATURE
    assert [(s.name, s.dtype, s.shape) for s in manifest.inputs] == [
        ("features", "float32", [-1, 3]), ("ids", "int64", [-1, -1]), ("text", "object", [-1])]
    assert [s.name for s in manifest.outputs] == ["total", "echo", "count"]
    assert manifest.sha256 == sha256_file(version_dir / "model.onnx") == sha256_file(onnx_source)
    assert manifest.warmup_shapes == {"ids": [-1, 16]}
    provenance = manifest.provenance
    assert provenance["source"] == {"format": "onnx", "file": "multi_io.onnx",
                                    "signature": SIGNATURE}
    assert provenance["opset"] == 17 and "onnxruntime" in provenance["frameworks"]
    assert not any(k.startswith("tensorflow") for k in provenance["frameworks"])
    assert [r["dynamic_size"] for r in provenance["parity"]["runs"]] == [16, 24]


def test_a_second_import_is_the_next_version(onnx_source, tmp_path):
    repository = tmp_path / "models"
    for _ in range(2):
        assert main(["import", str(onnx_source), "--repository", str(repository),
                     "--name", "again"]) == 0
    assert list_versions(repository / "again") == [1, 2]
    assert [p.name for p in (repository / "again").iterdir()] != []
    assert not [p for p in (repository / "again").iterdir() if p.name.startswith(".")]


async def test_tf_serving_rest_and_triton_clients_get_onnx_runtimes_outputs(full_server):
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    x = multi_io_inputs(rows=3, length=7, seed=11)
    want = ort_reference(multi_io_model(), x)
    url = full_server.http_url
    for row in (True, False):
        got = await asyncio.to_thread(tf_rest, url, "multi_io", x, signature=SIGNATURE, row=row)
        assert_close(got, want, 1e-6, f"TF REST row={row}")
    names = ["total", "echo", "count"]
    got = await asyncio.to_thread(triton, triton_http, url.removeprefix("http://"), "multi_io",
                                  x, names)
    assert_close(got, want, 1e-6, "tritonclient.http")
    got = await asyncio.to_thread(triton, triton_grpc, full_server.grpc_target, "multi_io", x,
                                  ["count"])
    assert_close(got, {"count": want["count"]}, 0, "tritonclient.grpc")


def _bad(path: Path, repository: Path) -> tuple[int, list[str]]:
    done = run_import(str(path), "--repository", str(repository))
    return done.returncode, done.stderr.strip().splitlines()


@pytest.mark.parametrize("kind", ["garbage", "missing", "no_saved_model", "suffix"])
def test_bad_sources_end_with_one_line_and_status_2(tmp_path, kind):
    path = {"garbage": tmp_path / "broken.onnx", "missing": tmp_path / "nothing.onnx",
            "no_saved_model": tmp_path / "export", "suffix": tmp_path / "model.pt"}[kind]
    if kind == "garbage":
        path.write_bytes(b"\x08\x07 not a protobuf at all")
    elif kind == "no_saved_model":
        (path / "1").mkdir(parents=True)
    elif kind == "suffix":
        path.write_bytes(b"\0")
    status, lines = _bad(path, tmp_path / "models")
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("modelserve import: error: ")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
