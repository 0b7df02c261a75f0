"""A task added by one module and one registration line (docs/tasks.md): tests/tasks/
tabular.py, registered here, serves a tiny onnx.helper model over /v1/tabular:predict
(the real uvicorn server, whose HTTP protocol answers task routes itself), TF Serving's
Classify, and the tensor protocols; without its registration the version fails to load,
saying why."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from serving.grpc.generated import grpc_predict_v2_pb2 as v2_pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as v2_grpc
from serving.grpc.generated.tensorflow.core.example import example_pb2, feature_pb2
from serving.grpc.generated.tensorflow_serving.apis import (
    classification_pb2,
    prediction_service_pb2_grpc,
)
from serving.tasks import TASKS
from tests.fixtures.tiny_models import _const, _model, write_model_version
from tests.tasks.tabular import TabularTask

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]
# The species follows the petals: small ones setosa, middling versicolor, large virginica.
WEIGHTS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                   np.float32)
BIAS = np.array([5.0, 1.0, -11.0], np.float32)
ROWS = [dict(zip(COLUMNS, r, strict=True)) for r in
        ([5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [7.7, 2.6, 6.9, 2.3])]


def tabular_model() -> onnx.ModelProto:
    """features float32 [N, 4] -> probabilities float32 [N, 3] (softmax)."""
    nodes = [helper.make_node("MatMul", ["features", "W"], ["logits0"]),
             helper.make_node("Add", ["logits0", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    return _model(nodes,
                  [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
                  [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
                  [_const("W", WEIGHTS), _const("b", BIAS)], "tiny_tabular")


def reference(rows: list[dict[str, float]]) -> np.ndarray:
    x = np.array([[row[c] for c in COLUMNS] for row in rows], np.float32)
    logits = x @ WEIGHTS + BIAS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def write_tabular(repository: Path, **fields) -> None:
    write_model_version(repository, "iris", 1, tabular_model(), task="tabular",
                        labels=LABELS, preprocessing={"columns": COLUMNS}, **fields)


@pytest.fixture
def registered() -> Iterator[TabularTask]:
    task = TASKS.register(TabularTask())  # the registration line, as in serving/tasks/
    yield task
    TASKS.unregister(task.name)


def example(row: dict[str, float]) -> example_pb2.Example:
    features = {name: feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[value]))
                for name, value in row.items()}
    return example_pb2.Example(features=feature_pb2.Features(feature=features))


async def test_a_registered_task_serves_its_route_classify_and_tensors(
        registered, tiny_model_repository: Path, make_full_server) -> None:
    write_tabular(tiny_model_repository)
    server = await make_full_server()
    expected = reference(ROWS)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        body = (await client.post("/v1/tabular:predict", json={"rows": ROWS})).json()
        assert body["model_name"] == "iris"
        assert [p["label"] for p in body["predictions"]] == ["setosa", "versicolor",
                                                            "virginica"]
        for prediction, probs in zip(body["predictions"], expected, strict=True):
            top = {t["label"]: t["probability"] for t in prediction["top"]}
            assert [top[label] for label in LABELS] == pytest.approx(probs.tolist(), rel=1e-5)
        one = (await client.post("/v1/tabular:predict?top_k=1", json={"row": ROWS[2]})).json()
        assert [t["label"] for t in one["predictions"][0]["top"]] == ["virginica"]

        bad = await client.post("/v1/tabular:predict", json={"rows": [ROWS[0], {"x": 1}]})
        assert bad.status_code == 400 and "item 1" in bad.json()["error"]
        strings = await client.post("/v1/models/iris:predict", json={"instances": ["a"]})
        assert strings.status_code == 400 and "not strings" in strings.json()["error"]
        # The model's own tensors, over TF Serving REST, as for any model.
        x = [[row[c] for c in COLUMNS] for row in ROWS]
        tensors = (await client.post("/v1/models/iris:predict", json={"instances": x})).json()
        np.testing.assert_allclose(tensors["predictions"], expected, rtol=1e-5)

        schema = (await client.get("/openapi.json")).json()
        operation = schema["paths"]["/v1/tabular:predict"]["post"]
        assert operation["description"] == TabularTask.summary
        assert operation["requestBody"]["content"]["application/json"]["example"] == \
            TabularTask.rest_example

    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "iris"
        request.input.example_list.examples.extend(example(row) for row in ROWS)
        response = await stub.Classify(request)
        for classification, probs in zip(response.result.classifications, expected,
                                         strict=True):
            scores = {c.label: c.score for c in classification.classes}
            assert [scores[label] for label in LABELS] == pytest.approx(probs.tolist(),
                                                                        rel=1e-5)
        request.input.example_list.examples[1].features.feature["petal_width"].ClearField(
            "float_list")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Classify(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "example 1" in refused.value.details()

        # v2 gRPC: the model's own tensors; a BYTES tensor of items goes to the task.
        v2 = v2_grpc.GRPCInferenceServiceStub(channel)
        infer = v2_pb.ModelInferRequest(model_name="iris")
        infer.inputs.add(name="features", datatype="FP32", shape=[len(ROWS), 4])
        infer.raw_input_contents.append(np.array(x, np.float32).tobytes())
        answer = await v2.ModelInfer(infer)
        np.testing.assert_allclose(
            np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(-1, 3),
            expected, rtol=1e-5)
        strings = v2_pb.ModelInferRequest(model_name="iris")
        strings.inputs.add(name="features", datatype="BYTES", shape=[1],
                           contents=v2_pb.InferTensorContents(bytes_contents=[b"5.1"]))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await v2.ModelInfer(strings)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not strings" in refused.value.details()


async def test_an_unregistered_task_fails_its_version_with_the_reason(
        tiny_model_repository: Path, make_full_server) -> None:
    write_tabular(tiny_model_repository)
    server = await make_full_server(strict_readiness=False)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        index = (await client.post("/v2/repository/index")).json()
        (iris,) = [e for e in index if e["name"] == "iris"]
        assert iris["state"] == "UNAVAILABLE"
        assert iris["reason"] == ("unknown task 'tabular'; the registered tasks are digit, "
                                  "image, text")
        assert (await client.post("/v1/tabular:predict", json={"rows": ROWS})).status_code \
            == 404
        digit = await client.post("/v1/digit:predict", json={"inputs": [[0.0] * 784]})
        assert digit.status_code == 200  # the other models serve


async def test_a_task_checks_what_it_needs_of_the_manifest(
        registered, tiny_model_repository: Path, make_full_server) -> None:
    write_model_version(tiny_model_repository, "iris", 1, tabular_model(), task="tabular",
                        labels=LABELS)  # no preprocessing.columns
    server = await make_full_server(strict_readiness=False)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        index = (await client.post("/v2/repository/index")).json()
    (iris,) = [e for e in index if e["name"] == "iris"]
    assert iris["state"] == "UNAVAILABLE" and "preprocessing.columns" in iris["reason"]


def test_the_docs_show_this_module_as_it_is() -> None:
    """docs/tasks.md walks through tests/tasks/tabular.py: the same text, so it runs."""
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "tasks.md").read_text(encoding="utf-8")
    shown = re.search(r"```python\n# serving/tasks/tabular\.py\n(.*?)```", docs, re.S)
    assert shown is not None, "docs/tasks.md lost its listing of the module"
    assert shown.group(1) == (root / "tests" / "tasks" / "tabular.py").read_text()
