"""Version labels, traffic split and shadow traffic on a real server (REST and gRPC).

Two versions of the ``ab`` model differ on purpose (tests/fixtures/rollout.py), so every
answer says by its values which version computed it, besides the version it reports.
Load loops are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from serving.grpc.generated import grpc_predict_v2_pb2 as v2pb
from serving.grpc.generated import grpc_predict_v2_pb2_grpc as v2grpc
from serving.grpc.generated.tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from serving.grpc.tf_tensors import from_numpy, to_numpy
from serving.routing import ROUTING_KEY_HEADER, VERSION_HEADER
from tests.fixtures.rollout import (
    MODEL,
    POLL_S,
    RolloutServer,
    expected_agreement,
    metric_samples,
    reference,
)

LABELS = {"labels": {"stable": 1, "canary": 2}}
ROW = [[1.0, 2.0, 3.0, 4.0]]  # top label 3 for version 1, 2 for version 2


def served_version(response: httpx.Response) -> int:
    """The version that answered, checked against the values it computed."""
    assert response.status_code == 200, response.text
    version = int(response.headers[VERSION_HEADER])
    got = np.array(response.json()["predictions"], dtype=np.float32)
    np.testing.assert_allclose(got, reference(version, np.array(ROW)), rtol=1e-6)
    return version


async def tf_predict(client: httpx.AsyncClient, server: RolloutServer, path: str = "",
                     key: str | None = None) -> httpx.Response:
    headers = {ROUTING_KEY_HEADER: key} if key is not None else {}
    return await client.post(f"{server.url}/v1/models/{MODEL}{path}:predict",
                             json={"instances": ROW}, headers=headers)


async def test_labels_over_every_protocol(make_rollout_server: Any) -> None:
    server = await make_rollout_server()
    async with httpx.AsyncClient(timeout=10) as client:
        # No labels file: 'latest' only, as before.
        assert served_version(await tf_predict(client, server)) == 2
        missing = await tf_predict(client, server, "/labels/stable")
        assert missing.status_code == 404 and "stable" in missing.json()["error"]

        params = await server.wait_labels(client, LABELS)
        assert params["version_labels"] == {"stable": "1", "canary": "2"}
        assert served_version(await tf_predict(client, server, "/labels/stable")) == 1
        assert served_version(await tf_predict(client, server, "/labels/canary")) == 2
        assert served_version(await tf_predict(client, server, "/labels/latest")) == 2
        status = (await client.get(f"{server.url}/v1/models/{MODEL}/labels/stable")).json()
        assert [s["version"] for s in status["model_version_status"]] == ["1"]
        meta = (await client.get(f"{server.url}/v1/models/{MODEL}/labels/stable/metadata"))
        assert meta.json()["model_spec"]["version"] == "1"
        # A version and a label at once, or an unknown label: the client's mistake.
        unknown = await tf_predict(client, server, "/labels/nope")
        assert unknown.status_code == 404 and "canary, stable, latest" in unknown.json()["error"]

        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ROW[0]}],
                "parameters": {"version_label": "stable"}}
        v2 = await client.post(f"{server.url}/v2/models/{MODEL}/infer", json=body)
        assert v2.json()["model_version"] == "1" and v2.headers[VERSION_HEADER] == "1"
        both = await client.post(f"{server.url}/v2/models/{MODEL}/versions/2/infer", json=body)
        assert both.status_code == 400 and "not both" in both.json()["error"]

        index = (await client.post(f"{server.url}/v2/repository/index", json={})).json()
        assert {e["version"]: e.get("labels") for e in index if e["name"] == MODEL} == {
            "1": ["stable"], "2": ["canary"]}
    await _grpc_labels(server)


async def _grpc_labels(server: RolloutServer) -> None:
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        tfs = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.version_label = "stable"
        request.inputs["x"].CopyFrom(from_numpy(np.array(ROW, dtype=np.float32)))
        answer = await tfs.Predict(request)
        assert answer.model_spec.version.value == 1
        np.testing.assert_allclose(to_numpy(answer.outputs["y"]), reference(1, np.array(ROW)))
        request.model_spec.version_label = "nope"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await tfs.Predict(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = MODEL
        status.model_spec.version_label = "canary"
        found = await model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status)
        assert [s.version for s in found.model_version_status] == [2]

        v2 = v2grpc.GRPCInferenceServiceStub(channel)
        infer = v2pb.ModelInferRequest(model_name=MODEL)
        infer.parameters["version_label"].string_param = "stable"
        tensor = infer.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        tensor.contents.fp32_contents.extend(ROW[0])
        assert (await v2.ModelInfer(infer)).model_version == "1"


async def test_label_at_a_version_not_loaded_is_refused(make_rollout_server: Any) -> None:
    server = await make_rollout_server()
    async with httpx.AsyncClient(timeout=10) as client:
        await server.wait_labels(client, LABELS)
        from tests.fixtures.rollout import write_labels
        write_labels(server.repository, {"labels": {"stable": 1, "canary": 3}})
        async with asyncio.timeout(10):
            while "labels_error" not in (params := await server.metadata(client)):
                await asyncio.sleep(POLL_S / 2)
        assert "canary -> 3: not a loaded version of 'ab' (loaded: 1, 2)" in \
            params["labels_error"]
        assert params["version_labels"] == {"stable": "1", "canary": "2"}  # still in force
        assert served_version(await tf_predict(client, server, "/labels/canary")) == 2
        write_labels(server.repository, {"labels": {"stable": 1}, "oops": 1})
        async with asyncio.timeout(10):
            while "unknown keys ['oops']" not in (await server.metadata(client)).get(
                    "labels_error", ""):
                await asyncio.sleep(POLL_S / 2)
        assert served_version(await tf_predict(client, server, "/labels/canary")) == 2


async def test_weighted_split_and_stickiness(make_rollout_server: Any) -> None:
    server = await make_rollout_server()
    requests, keys, per_key = 1500, 100, 5
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=16)) as client:
        await server.wait_labels(client, LABELS | {"traffic": {"stable": 80, "canary": 20}})
        versions = await _bounded(requests, 16, lambda i: tf_predict(client, server))
        share = versions.count(2) / requests
        # 20 % expected; the binomial standard deviation over 2000 is 0.9 %: 4.5 sd margin.
        assert 0.16 <= share <= 0.24, share

        by_key: dict[str, set[int]] = {}
        answers = await _bounded(keys * per_key, 16, lambda i: tf_predict(
            client, server, key=f"user-{i % keys}"))
        for i, version in enumerate(answers):
            by_key.setdefault(f"user-{i % keys}", set()).add(version)
        assert all(len(seen) == 1 for seen in by_key.values())  # exact stickiness
        sticky_share = sum(seen == {2} for seen in by_key.values()) / keys
        assert 0.1 <= sticky_share <= 0.3, sticky_share

        routed = metric_samples(await server.metrics(client), "modelserve_routed_requests_total")
        counted = {(s["version"], s["label"]): v for s, v in routed if s["via"] == "split"}
        assert sum(counted.values()) == requests + keys * per_key
    # Over gRPC the key is metadata, and the same key lands on the same version.
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        tfs = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["x"].CopyFrom(from_numpy(np.array(ROW, dtype=np.float32)))
        for i in range(20):
            answer = await tfs.Predict(request, metadata=((ROUTING_KEY_HEADER, f"user-{i}"),))
            assert {answer.model_spec.version.value} == by_key[f"user-{i}"]
        assert set(counted) == {("1", "stable"), ("2", "canary")}


async def _bounded(count: int, concurrency: int, call: Any) -> list[int]:
    """``count`` calls, ``concurrency`` at a time, each's served version; 120 s at most."""
    results: list[int] = [0] * count
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            results[i] = served_version(await call(i))
    async with asyncio.timeout(120):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def test_canary_rollout_under_traffic_fails_nothing(make_rollout_server: Any) -> None:
    """5 % → 50 % → 100 % while requests run, then the old version is retired."""
    server = await make_rollout_server()
    failures: list[str] = []
    seen: list[int] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=10) as client:
        await server.wait_labels(client, LABELS | {"traffic": {"stable": 100}})

        async def traffic(worker: int) -> None:
            for i in range(5000):  # bounded; stopped well before
                if stop.is_set():
                    return
                response = await tf_predict(client, server, key=f"{worker}-{i}")
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    seen.append(served_version(response))
        workers = [asyncio.create_task(traffic(w)) for w in range(6)]
        shares = []
        for canary in (5, 50, 100):
            await server.wait_labels(client, LABELS | {
                "traffic": {"stable": 100 - canary, "canary": canary}})
            start = len(seen) + len(workers)  # past the answers routed before the change
            async with asyncio.timeout(30):  # 200 answers per step (a loaded machine is slow)
                while len(seen) - start < 200:
                    await asyncio.sleep(0.05)
            shares.append(seen[start:].count(2) / (len(seen) - start))
        # Retire version 1: the labels first (no label may point at it), then its files.
        await server.wait_labels(client, {"labels": {"stable": 2}, "traffic": {"stable": 100}})
        import shutil
        shutil.rmtree(server.repository / MODEL / "1")
        async with asyncio.timeout(10):
            while [e["version"] for e in (await client.post(
                    f"{server.url}/v2/repository/index", json={})).json()
                    if e["state"] == "READY"] != ["2"]:
                await asyncio.sleep(POLL_S)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
    assert failures == []
    assert len(seen) > 200
    # 200+ answers per step: 5 % and 50 % with over 4 standard deviations of room.
    assert shares[0] < 0.15 and 0.35 < shares[1] < 0.65 and shares[2] == 1.0, shares


async def test_shadow_agreement_metrics_are_exact(make_rollout_server: Any) -> None:
    server = await make_rollout_server()
    rows = np.random.default_rng(7).uniform(-1, 1, size=(200, 4)).astype(np.float32)
    async with httpx.AsyncClient(timeout=10) as client:
        await server.wait_labels(client, LABELS | {"traffic": {"stable": 100}, "shadow": {
            "primary": "stable", "candidate": "canary", "share": 1.0}})
        for start in range(0, len(rows), 4):  # 50 requests of 4 rows
            batch = rows[start:start + 4]
            response = await client.post(f"{server.url}/v1/models/{MODEL}:predict",
                                         json={"instances": batch.tolist()})
            assert response.headers[VERSION_HEADER] == "1"
            np.testing.assert_allclose(response.json()["predictions"], reference(1, batch))
        pair = {"model": MODEL, "primary_version": "1", "candidate_version": "2"}
        async with asyncio.timeout(10):
            while (dict(_pair_samples(await server.metrics(client),
                                      "modelserve_shadow_requests_total", pair, "outcome"))
                   .get("compared", 0) < 50):
                await asyncio.sleep(0.05)
        text = await server.metrics(client)
    agree, disagree, largest = expected_agreement(rows)
    assert 0 < disagree < len(rows)  # the versions differ on purpose, on some rows
    top = dict(_pair_samples(text, "modelserve_shadow_top_label_total", pair, "agreement"))
    assert top == {"agree": agree, "disagree": disagree}
    measured = [v for s, v in metric_samples(text, "modelserve_shadow_largest_output_difference")
                if s.items() >= pair.items()]
    assert measured == [pytest.approx(largest, rel=1e-6)]
    outcomes = dict(_pair_samples(text, "modelserve_shadow_requests_total", pair, "outcome"))
    assert outcomes == {"compared": 50}
    deltas = [v for s, v in metric_samples(
        text, "modelserve_shadow_latency_difference_seconds_count") if s.items() >= pair.items()]
    assert deltas == [50]


def _pair_samples(text: str, name: str, pair: dict[str, str], key: str
                  ) -> list[tuple[str, float]]:
    return [(s[key], v) for s, v in metric_samples(text, name) if s.items() >= pair.items()]


async def test_shadow_never_delays_the_caller_and_is_shed_when_busy(
        make_rollout_server: Any, hold_model_busy: Any) -> None:
    """The candidate is held stuck: callers' latency with the shadow on stays that of the
    shadow off (measured in one run), and shadow requests are shed once its queue fills."""
    server = await make_rollout_server(inference_threads=1, inline_batch_max_ms=0.0,
                                       max_queue_size=8)
    candidate = server.process.dataplane.registry.get(MODEL, 2)
    busy = hold_model_busy(candidate)
    async with httpx.AsyncClient(timeout=10) as client:
        base = LABELS | {"traffic": {"stable": 100}}
        await server.wait_labels(client, base)
        off = await _latencies(client, server, 150)
        await server.wait_labels(client, base | {"shadow": {
            "primary": "stable", "candidate": "canary", "share": 1.0, "shed_above": 0.5}})
        on = await _latencies(client, server, 150)
        text = await server.metrics(client)
    busy.release()
    pair = {"model": MODEL, "primary_version": "1", "candidate_version": "2"}
    outcomes = dict(_pair_samples(text, "modelserve_shadow_requests_total", pair, "outcome"))
    assert outcomes.get("shed", 0) >= 140, outcomes  # at most a few rows queued, then shed
    # Generous margin: the machine is shared, so medians, not tails, and 50 % + 2 ms.
    assert statistics.median(on) <= 1.5 * statistics.median(off) + 0.002, (
        statistics.median(off), statistics.median(on))


async def _latencies(client: httpx.AsyncClient, server: RolloutServer, n: int) -> list[float]:
    found = []
    for _ in range(n):
        start = time.perf_counter()
        assert served_version(await tf_predict(client, server)) == 1
        found.append(time.perf_counter() - start)
    return found


async def test_task_endpoints_take_a_label_and_a_routing_key(
        tmp_path: Any, make_rest_client: Any) -> None:
    from tests.fixtures.tiny_models import digit_model, write_model_version
    repository = tmp_path / "tasks"
    for version in (1, 2):
        write_model_version(repository, "digit", version, digit_model())
    (repository / "digit" / "labels.json").write_text(
        '{"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 50, "canary": 50}}')
    app = await make_rest_client(repository, version_policy="all")
    await app.dataplane.repository.start()  # reads labels.json (no polling here)
    body = {"inputs": [[0.0] * 784]}

    async def version(query: str, headers: dict[str, str] | None = None) -> str:
        response = await app.client.post(f"/v1/digit:predict{query}", json=body,
                                         headers=headers or {})
        assert response.status_code == 200, response.text
        assert response.headers[VERSION_HEADER] == response.json()["model_version"]
        return str(response.json()["model_version"])

    assert await version("?version_label=stable") == "1"
    assert await version("?version_label=canary") == "2"
    by_query = {await version(f"?routing_key=user-{i}") for i in range(40)}
    assert by_query == {"1", "2"}  # 40 users over a 50/50 split: both versions serve
    for i in range(40):  # the header and the query parameter are the same key
        assert await version(f"?routing_key=user-{i}") == \
            await version("", {ROUTING_KEY_HEADER: f"user-{i}"})
    bad = await app.client.post("/v1/digit:predict?version_label=nope", json=body)
    assert bad.status_code == 404
    both = await app.client.post("/v1/digit:predict?version_label=stable&version=2", json=body)
    assert both.status_code == 400
