"""Issue 12, finding 8: error bodies say what was wrong with the request, never the
server's internals (absolute paths, ONNX Runtime's or a decoder's messages); those go to
the log with a request id, which every response carries (``x-request-id``, echoed when
the client sends a usable one; gRPC: trailing metadata)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from serving.grpc.generated.tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
)
from tests.fixtures.tiny_models import failing_model, write_model_version
from tests.integration.rest.images import solid_rgb

INTERNALS = re.compile(r"ONNXRuntimeError|INVALID_PROTOBUF|Gather|/tmp/|pytest-of|"
                       r"_io\.BytesIO|object at 0x|inhomogeneous|Traceback")
DIGIT = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784],
                     "data": [0.0] * 784}]}


def assert_clean(text: str, repository: Path) -> None:
    assert str(repository) not in text, text
    assert not INTERNALS.search(text), text


def _broken(repository: Path) -> None:
    """A version whose model file is not ONNX (its checksum matches, so the runtime is
    what refuses it, with a message naming the file's absolute path)."""
    write_model_version(repository, "broken", 1, b"garbage", inputs=[
        {"name": "pixels", "dtype": "float32", "shape": [-1, 784]}], outputs=[
        {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}],
        postprocessing={"kind": "softmax", "output": "probabilities"})


async def test_a_failed_load_is_reported_without_paths_or_runtime_messages(
        make_server, caplog) -> None:
    server = await make_server()
    repository = server.repository
    _broken(repository)
    caplog.set_level(logging.ERROR)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        load = await client.post("/v2/repository/models/broken/load")
        status = await client.get("/v1/models/broken")
        index = await client.post("/v2/repository/index")
        predict = await client.post("/v1/models/broken/versions/1:predict",
                                    json={"instances": [[0.0] * 784]})
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "broken"
        grpc_status = await model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request)
        grpc_index = await pb_grpc.GRPCInferenceServiceStub(channel).RepositoryIndex(
            pb.RepositoryIndexRequest())
    assert load.status_code == 400 and "broken" in load.json()["error"]
    assert status.json()["model_version_status"][0]["state"] == "END"
    assert predict.status_code in (404, 503)
    for text in (load.text, status.text, index.text, predict.text, str(grpc_status),
                 str(grpc_index)):
        assert_clean(text, repository)
    # The operator still gets the whole story.
    assert "INVALID_PROTOBUF" in caplog.text and str(repository) in caplog.text


async def test_an_inference_failure_answers_a_request_id_not_the_runtimes_message(
        make_server, caplog) -> None:
    server = await make_server()
    # idx int64 [N, 1] -> table[idx]: an index out of range makes ONNX Runtime raise.
    write_model_version(server.repository, "failing", 1, failing_model(), task="digit",
                        postprocessing={"kind": "softmax", "output": "y"})
    caplog.set_level(logging.WARNING)
    bad = {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [99]}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.post("/v2/repository/models/failing/load")).status_code == 200
        mine = await client.post("/v2/models/failing/infer", json=bad,
                                 headers={"x-request-id": "client-42"})
        theirs = await client.post("/v2/models/failing/infer", json=bad)
    assert (mine.status_code, theirs.status_code) == (500, 500)
    assert mine.headers["x-request-id"] == "client-42"
    assert "request id client-42" in mine.json()["error"]
    generated = theirs.headers["x-request-id"]
    assert generated and f"request id {generated}" in theirs.json()["error"]
    for resp in (mine, theirs):
        assert_clean(resp.text, server.repository)
    assert "client-42" in caplog.text and "Gather" in caplog.text  # the log has it all

    request = pb.ModelInferRequest(model_name="failing")
    request.inputs.add(name="idx", datatype="INT64", shape=[1, 1])
    request.raw_input_contents.append(np.array([[99]], np.int64).tobytes())
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                request, metadata=(("x-request-id", "grpc-7"),))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert_clean(err.value.details() or "", server.repository)
    assert "request id grpc-7" in (err.value.details() or "")
    assert ("x-request-id", "grpc-7") in tuple(err.value.trailing_metadata() or ())


async def test_every_response_carries_a_request_id(make_server) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        hot = await client.post("/v1/digit:predict", json={"input": [0] * 784},
                                headers={"x-request-id": "abc-1"})
        health = await client.get("/v2/health/live")
        bad_json = await client.post("/v1/models/digit:predict", content=b"{nope",
                                     headers={"x-request-id": "abc-2"})
        hot_error = await client.post("/v1/digit:predict", json={"input": [0] * 3})
        unusable = await client.post("/v1/digit:predict", json={"input": [0] * 784},
                                     headers={"x-request-id": "has spaces" + "x" * 300})
    assert (hot.status_code, hot.headers["x-request-id"]) == (200, "abc-1")
    assert health.headers["x-request-id"]
    assert (bad_json.status_code, bad_json.headers["x-request-id"]) == (400, "abc-2")
    assert hot_error.status_code == 400 and hot_error.headers["x-request-id"]
    replaced = unusable.headers["x-request-id"]
    assert replaced and " " not in replaced and len(replaced) <= 128
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        call = pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(
            pb.ServerLiveRequest(), metadata=(("x-request-id", "g-1"),))
        await call
        assert ("x-request-id", "g-1") in tuple(await call.trailing_metadata() or ())


async def test_decoder_and_numpy_messages_stay_in_the_log(make_server) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        corrupt = await client.post("/v1/image:predict", content=b"\x89PNG not really",
                                    headers={"content-type": "image/png"})
        truncated = await client.post("/v1/image:predict",
                                      content=solid_rgb(1, 2, 3, fmt="JPEG")[:300],
                                      headers={"content-type": "image/jpeg"})
        ragged = await client.post("/v1/models/digit:predict",
                                   json={"instances": [[0.0] * 784, [0.0] * 3]})
    for resp in (corrupt, truncated, ragged):
        assert resp.status_code == 400, resp.text
        assert_clean(resp.text, server.repository)
    assert "cannot decode image" in corrupt.json()["error"]
    assert "ragged" in ragged.json()["error"]
