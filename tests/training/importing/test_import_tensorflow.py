"""`modelserve import` of models the project did not train, built here with TensorFlow:
two named inputs and two outputs, an int64 token input with a dynamic sequence length,
a convolution over any image size, a SavedModel whose only signature is "predict",
Keras .keras and .h5 files (and the onnx.helper model, for the official TF Serving
stub). Each is imported once, served by the real server, and called through
tensorflow-serving-api's gRPC stub, TF Serving REST (rows and columns) and tritonclient
(HTTP and gRPC); every answer must be TensorFlow's (ONNX Runtime's for the ONNX file)
within the parity tolerance. Bad imports end with one line and exit status 2."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest

from serving.cli import main
from serving.models.manifest import read_manifest
from tests.fixtures.generic_models import multi_io_inputs, multi_io_model, ort_reference
from tests.training.importing import tf_models
from tests.training.importing.protocols import assert_close, tf_grpc_official, tf_rest, triton

pytestmark = pytest.mark.slow  # TensorFlow: building, exporting and converting the models
TOLERANCE = 1e-4  # the import's default parity tolerance
NAMES = ["two_in_two_out", "tokens", "conv", "masked", "dense_keras", "dense_h5", "multi_io"]


@dataclass
class Imported:
    repository: Path
    cases: dict[str, tf_models.Case]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    root = tmp_path_factory.mktemp("tf_sources")
    repository = root / "models"
    cases = [build(root) for build in tf_models.BUILDERS]
    onnx_path = root / "multi_io.onnx"
    onnx.save(multi_io_model(), onnx_path)
    x = multi_io_inputs(rows=2, length=5, seed=12)
    cases.append(tf_models.Case("multi_io", onnx_path, x, ort_reference(multi_io_model(), x)))
    for case in cases:
        status = main(["import", str(case.source), "--repository", str(repository),
                       *case.import_args])
        assert status == 0, case.name
        if "_only" in case.reference:  # a Keras output: named by the export's signature
            outputs = read_manifest(repository / case.name / "1").outputs
            case.reference = {outputs[0].name: case.reference["_only"]}
    return Imported(repository, {case.name: case for case in cases})


@pytest.fixture
def tiny_model_repository(imported: Imported) -> Path:
    """full_server serves the imported repository (overrides the shared fixture)."""
    return imported.repository


def test_every_source_was_imported_under_its_signatures_names(imported):
    assert sorted(imported.cases) == sorted(NAMES)
    for name, case in imported.cases.items():
        manifest = read_manifest(imported.repository / name / "1")
        assert manifest.task is None and manifest.signature_name == case.signature
        assert sorted(s.name for s in manifest.inputs) == sorted(case.inputs), name
        assert sorted(s.name for s in manifest.outputs) == sorted(case.reference), name
        provenance = manifest.provenance
        if name != "multi_io":
            assert provenance["parity"]["max_relative_diff"] <= TOLERANCE
            assert set(provenance["parity"]["outputs"]) == set(case.reference)
            assert {"tensorflow", "tf2onnx", "onnxruntime"} <= set(provenance["frameworks"])
    conv = read_manifest(imported.repository / "conv" / "1")
    assert conv.inputs[0].shape == [-1, -1, -1, 3]
    assert conv.warmup_shapes == {"image": [-1, 16, 16, 3]}
    tokens = read_manifest(imported.repository / "tokens" / "1")
    assert [(s.dtype, s.shape) for s in tokens.inputs] == [("int64", [-1, -1])]
    masked = read_manifest(imported.repository / "masked" / "1")
    assert {s.name: s.dtype for s in masked.inputs} == {"mask": "bool", "x": "float32"}
    assert {s.name: s.dtype for s in masked.outputs} == {"count": "int64",
                                                         "masked_sum": "float32"}


@pytest.mark.parametrize("name", NAMES)
async def test_every_protocol_answers_with_the_sources_outputs(full_server, imported, name):
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    case = imported.cases[name]
    want, url = case.reference, full_server.http_url
    outputs, signature = await asyncio.to_thread(
        tf_grpc_official, full_server.grpc_target, name, case.inputs, signature=case.signature)
    assert_close(outputs, want, TOLERANCE, "tensorflow-serving-api Predict")
    assert sorted(signature.inputs) == sorted(case.inputs)
    assert sorted(signature.outputs) == sorted(want)
    assert signature.method_name == "tensorflow/serving/predict"
    first = sorted(want)[0]
    filtered, _ = await asyncio.to_thread(
        tf_grpc_official, full_server.grpc_target, name, case.inputs, signature=case.signature,
        output_filter=(first,))
    assert_close(filtered, {first: want[first]}, TOLERANCE, "Predict with output_filter")
    for row in (True, False):
        got = await asyncio.to_thread(tf_rest, url, name, case.inputs, signature=case.signature,
                                      row=row)
        if "_only" in got:
            got = {first: got["_only"]}
        assert_close(got, want, TOLERANCE, f"TF Serving REST row={row}")
    got = await asyncio.to_thread(triton, triton_http, url.removeprefix("http://"), name,
                                  case.inputs, sorted(want))
    assert_close(got, want, TOLERANCE, "tritonclient.http")
    got = await asyncio.to_thread(triton, triton_grpc, full_server.grpc_target, name,
                                  case.inputs, sorted(want))
    assert_close(got, want, TOLERANCE, "tritonclient.grpc")


@pytest.mark.parametrize(("kind", "expected"), [
    ("unsupported_op", "tf2onnx cannot convert the TensorFlow op Igamma"),
    ("string_op", "tf2onnx cannot convert the TensorFlow op String"),
    ("missing_signature", "signature 'classify' not found"),
])
def test_bad_imports_end_with_one_line_and_status_2(tmp_path, capsys, kind, expected):
    if kind == "unsupported_op":
        args = [str(tf_models.unsupported_op(tmp_path))]
    elif kind == "string_op":
        args = [str(tf_models.string_op(tmp_path))]
    else:
        args = [str(tf_models.unsupported_op(tmp_path)), "--signature", "classify"]
    capsys.readouterr()
    status = main(["import", *args, "--repository", str(tmp_path / "models")])
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("modelserve import: error:")]
    assert status == 2 and len(errors) == 1 and expected in errors[0], errors
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_generated_integers_follow_int_range(tmp_path, capsys):
    source = tf_models.small_vocabulary(tmp_path)
    repository = tmp_path / "models"
    assert main(["import", str(source), "--repository", str(repository)]) == 2
    assert "--int-range" in capsys.readouterr().err
    assert main(["import", str(source), "--repository", str(repository),
                 "--int-range", "0,5"]) == 0
    assert read_manifest(repository / "small_vocab" / "1").inputs[0].name == "ids"


def test_a_parity_failure_names_the_output(imported, tmp_path, capsys):
    """Re-import the source whose recorded difference is largest with a tolerance ten times
    below it: the import must fail and name one of its outputs."""
    parity = {name: read_manifest(imported.repository / name / "1").provenance["parity"]
              for name in NAMES if name != "multi_io"}
    name = max(parity, key=lambda n: parity[n]["max_relative_diff"])
    worst = parity[name]["max_relative_diff"]
    if worst == 0:
        pytest.skip("every conversion was exact on this machine")
    case = imported.cases[name]
    status = main(["import", str(case.source), "--repository", str(tmp_path / "models"),
                   "--tolerance", f"{worst / 10:g}", *case.import_args])
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("modelserve import: error:")]
    assert status == 2 and len(errors) == 1, errors
    named = [o for o in parity[name]["outputs"] if f"parity check failed: output {o!r}" in
             errors[0]]
    assert named, errors[0]
