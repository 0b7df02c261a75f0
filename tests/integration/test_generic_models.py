"""Generic tensor models (no task) over every tensor protocol, in-process REST and a real
grpc.aio server: several named inputs and outputs, a string input (plain and b64), the
model's own signature name, output selection, a bare model.onnx without a manifest, and
a model without a batch dimension."""

from __future__ import annotations

import asyncio
import base64
import struct
from pathlib import Path

import grpc
import numpy as np
import orjson
import pytest

from serving.grpc import tf_tensors
from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as v2_grpc
from serving.grpc.generated.tensorflow.core.example import example_pb2
from serving.grpc.generated.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    prediction_service_pb2_grpc,
)
from serving.models.manifest import sha256_file
from tests.fixtures.generic_models import (
    fixed_shape_model,
    multi_io_inputs,
    multi_io_model,
    ort_reference,
    write_bare_version,
    write_generic_version,
)
from tests.fixtures.tiny_models import write_default_models
from tests.integration.grpc.helpers import predict_request

SIGNATURE = "predict"


@pytest.fixture
def tiny_model_repository(tmp_path: Path) -> Path:
    """The seed's tiny models beside three generic ones (overrides the shared fixture)."""
    repository = write_default_models(tmp_path / "models")
    write_generic_version(repository, "multi", 1, multi_io_model(), signature_name=SIGNATURE,
                          warmup_shapes={"ids": [-1, 4]})
    write_bare_version(repository, "bare", 1, multi_io_model())
    write_generic_version(repository, "fixed", 1, fixed_shape_model())
    return repository


def b64(text: str) -> dict[str, str]:
    return {"b64": base64.b64encode(text.encode()).decode()}


async def test_tf_rest_rows_with_b64_and_columns_with_plain_strings(grpc_app):
    x = multi_io_inputs(rows=2, length=3)
    want = ort_reference(multi_io_model(), x)
    rows = [{"features": x["features"][i].tolist(), "ids": x["ids"][i].tolist(),
             "text": b64(x["text"][i])} for i in range(2)]
    r = await grpc_app.rest.post("/v1/models/multi:predict",
                                 json={"signature_name": SIGNATURE, "instances": rows})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    np.testing.assert_allclose([p["total"] for p in predictions], want["total"], rtol=1e-6)
    assert [p["echo"] for p in predictions] == list(want["echo"])
    assert [p["count"] for p in predictions] == want["count"].tolist()

    columns = {"features": x["features"].tolist(), "ids": x["ids"].tolist(),
               "text": list(x["text"])}
    r = await grpc_app.rest.post("/v1/models/multi/versions/1:predict",
                                 json={"inputs": columns})  # no signature_name: the model's
    outputs = r.json()["outputs"]
    np.testing.assert_allclose(outputs["total"], want["total"], rtol=1e-6)
    assert outputs["count"] == want["count"].tolist()


@pytest.mark.parametrize(("body", "message"), [
    ({"signature_name": "serving_default", "inputs": {"features": [[1, 2, 3]]}}, "predict"),
    ({"inputs": {"features": [[1, 2, 3]], "ids": [[1]], "text": [{"b64": "//79"}]}},
     "UTF-8"),
    ({"inputs": {"features": [[1, 2, 3]], "ids": [[1]], "text": [1.5]}}, "not a string"),
    ({"inputs": {"features": [[1, 2, 3]], "ids": [[1, 2], [3]], "text": ["1"]}}, "ids"),
])
async def test_tf_rest_refuses_with_the_reason(grpc_app, body, message):
    r = await grpc_app.rest.post("/v1/models/multi:predict", json=body)
    assert r.status_code == 400 and message in r.json()["error"], r.text


async def test_tf_rest_metadata_carries_the_signature_name_and_types(grpc_app):
    body = (await grpc_app.rest.get("/v1/models/multi/metadata")).json()
    signature = body["metadata"]["signature_def"]["signature_def"][SIGNATURE]
    assert {k: v["dtype"] for k, v in signature["inputs"].items()} == {
        "features": "DT_FLOAT", "ids": "DT_INT64", "text": "DT_STRING"}
    assert signature["inputs"]["ids"]["tensor_shape"]["dim"][1]["size"] == "-1"
    assert sorted(signature["outputs"]) == ["count", "echo", "total"]


async def test_tf_grpc_predict_output_filter_and_metadata(grpc_app):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_app.channel)
    x = multi_io_inputs(rows=3, length=5, seed=1)
    want = ort_reference(multi_io_model(), x)
    sent = x | {"text": np.array([t.encode() for t in x["text"]], dtype=object)}
    request = predict_request("multi", sent, output_filter=("total", "echo"))
    request.model_spec.signature_name = SIGNATURE
    response = await stub.Predict(request)
    assert sorted(response.outputs) == ["echo", "total"]
    assert response.model_spec.signature_name == SIGNATURE
    np.testing.assert_allclose(tf_tensors.to_numpy(response.outputs["total"]), want["total"],
                               rtol=1e-6)
    assert [b.decode() for b in tf_tensors.to_numpy(response.outputs["echo"])] == \
        list(want["echo"])

    request.model_spec.signature_name = "serving_default"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"])
    meta_request.model_spec.name = "multi"
    meta = await stub.GetModelMetadata(meta_request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(signatures)
    assert list(signatures.signature_def) == [SIGNATURE]
    assert sorted(signatures.signature_def[SIGNATURE].inputs) == ["features", "ids", "text"]


async def test_classify_on_a_generic_model_says_use_predict(grpc_app):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_app.channel)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "multi"
    request.input.example_list.examples.append(example_pb2.Example())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Predict" in (err.value.details() or "")


async def test_v2_rest_several_inputs_output_selection_and_binary_output(grpc_app):
    x = multi_io_inputs(rows=2, length=6, seed=2)
    want = ort_reference(multi_io_model(), x)
    body = {"inputs": [
        {"name": "features", "datatype": "FP32", "shape": [2, 3],
         "data": x["features"].ravel().tolist()},
        {"name": "ids", "datatype": "INT64", "shape": [2, 6], "data": x["ids"].ravel().tolist()},
        {"name": "text", "datatype": "BYTES", "shape": [2], "data": list(x["text"])}],
        "outputs": [{"name": "count"}, {"name": "echo", "parameters": {"binary_data": True}}]}
    r = await grpc_app.rest.post("/v2/models/multi/infer", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    header, blob = orjson.loads(r.content[:length]), r.content[length:]
    outputs = {o["name"]: o for o in header["outputs"]}
    assert sorted(outputs) == ["count", "echo"]
    assert outputs["count"]["data"] == want["count"].ravel().tolist()
    echoed, offset = [], 0
    while offset < len(blob):
        (size,) = struct.unpack_from("<I", blob, offset)
        echoed.append(blob[offset + 4:offset + 4 + size].decode())
        offset += 4 + size
    assert echoed == list(want["echo"])
    meta = (await grpc_app.rest.get("/v2/models/multi")).json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("features", "FP32"), ("ids", "INT64"), ("text", "BYTES")]


async def test_v2_grpc_raw_inputs_and_output_selection(grpc_app):
    stub = v2_grpc.GRPCInferenceServiceStub(grpc_app.channel)
    x = multi_io_inputs(rows=1, length=2, seed=3)
    want = ort_reference(multi_io_model(), x)
    request = v2_pb.ModelInferRequest(model_name="multi", outputs=[
        v2_pb.ModelInferRequest.InferRequestedOutputTensor(name="total")])
    request.inputs.add(name="features", datatype="FP32", shape=[1, 3])
    request.inputs.add(name="ids", datatype="INT64", shape=[1, 2])
    request.inputs.add(name="text", datatype="BYTES", shape=[1])
    text = x["text"][0].encode()
    request.raw_input_contents.extend([x["features"].tobytes(), x["ids"].tobytes(),
                                       struct.pack("<I", len(text)) + text])
    response = await stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["total"]
    total = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(1, 1)
    np.testing.assert_allclose(total, want["total"], rtol=1e-6)


async def test_bare_model_onnx_is_served_with_the_graph_signature(grpc_app, caplog):
    served = grpc_app.dataplane.model("bare")
    manifest = served.manifest
    assert manifest.task is None and manifest.signature_name == "serving_default"
    assert manifest.sha256 == sha256_file(served.path / "model.onnx")
    assert [(s.name, s.dtype, s.shape) for s in manifest.inputs] == [
        ("features", "float32", [-1, 3]), ("ids", "int64", [-1, -1]), ("text", "object", [-1])]
    assert any("no manifest.json" in r.getMessage() for r in caplog.get_records("setup"))
    x = multi_io_inputs(rows=2, length=2, seed=4)
    r = await grpc_app.rest.post("/v1/models/bare:predict", json={"inputs": {
        "features": x["features"].tolist(), "ids": x["ids"].tolist(), "text": list(x["text"])}})
    np.testing.assert_allclose(r.json()["outputs"]["total"],
                               ort_reference(multi_io_model(), x)["total"], rtol=1e-6)


async def test_a_model_without_batch_dimension_runs_each_request_alone(grpc_app):
    served = grpc_app.dataplane.model("fixed")
    assert not served.manifest.batched and served.batching.max_batch_size == 1
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    replies = await asyncio.gather(*(grpc_app.rest.post(
        "/v1/models/fixed:predict", json={"inputs": (x + i).tolist()}) for i in range(3)))
    for i, r in enumerate(replies):
        np.testing.assert_allclose(r.json()["outputs"], (x + i).sum(axis=0))
    r = await grpc_app.rest.post("/v1/models/fixed:predict", json={"inputs": [[1, 2, 3]]})
    assert r.status_code == 400 and "shape" in r.json()["error"]
    r = await grpc_app.rest.post("/v1/models/fixed:predict", json={"instances": x.tolist()})
    assert r.status_code == 200  # one output, so rows are simply its values


async def test_different_sequence_lengths_are_never_merged(grpc_app, hold_model_busy):
    served = grpc_app.dataplane.model("multi")
    seen: list[tuple[int, ...]] = []
    run = served.batcher.run_batch
    served.batcher.run_batch = lambda feeds: (seen.append(feeds["ids"].shape), run(feeds))[1]
    busy = hold_model_busy(served)

    def call(length: int) -> asyncio.Task:
        return asyncio.create_task(grpc_app.dataplane.infer(
            "multi", None, multi_io_inputs(rows=1, length=length, seed=length),
            protocol="rest", deadline=None))

    lengths = [4, 3, 5, 3, 5]
    calls = [call(lengths[0])]  # dispatched at once, stuck behind the busy thread
    await asyncio.sleep(0.05)
    calls += [call(n) for n in lengths[1:]]
    await busy.wait_queued(len(lengths) - 1)
    busy.release()
    results = await asyncio.gather(*calls)
    assert [int(r.outputs["count"][0, 0]) for r in results] == lengths
    assert seen[0] == (1, 4) and sorted(seen[1:]) == [(2, 3), (2, 5)]
