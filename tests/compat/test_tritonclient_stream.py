"""tritonclient's streaming API, unchanged, against our ModelStreamInfer (the real server).

``start_stream(callback)`` + ``async_stream_infer(...)`` + ``stop_stream()`` as a Triton
user writes them (tritonclient.grpc, sync, callbacks on its own thread), and the asyncio
client's ``stream_infer``: every request answered once, by id, with ONNX Runtime's own
numbers; a failing request reported through the callback while the stream goes on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from tests.compat.helpers import ort_outputs
from tests.integration.grpc.helpers import digits


def _stream_calls(target: str, requests: list[tuple[str, str, np.ndarray]]) -> list[Any]:
    """(request id, model, pixels) sent on one stream; the callback's (result, error)s."""
    import tritonclient.grpc as triton

    seen: list[Any] = []
    done = threading.Event()

    def callback(result: Any, error: Any) -> None:
        seen.append((result, error))
        if len(seen) == len(requests):
            done.set()

    client = triton.InferenceServerClient(target)
    try:
        client.start_stream(callback=callback)
        for request_id, model, pixels in requests:
            tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
            tensor.set_data_from_numpy(pixels)
            client.async_stream_infer(model, [tensor], request_id=request_id,
                                      enable_empty_final_response=request_id == "final")
        done.wait(timeout=20)
        client.stop_stream()
    finally:
        client.close()
    return seen


async def test_start_stream_and_async_stream_infer(full_server, tiny_model_repository):
    requests = [(f"r{i}", "digit", digits(1 + i % 3, seed=i)) for i in range(6)]
    requests.insert(3, ("broken", "no-such-model", digits(1)))
    requests.append(("final", "digit", digits(2, seed=40)))
    seen = await asyncio.to_thread(_stream_calls, full_server.grpc_target, requests)
    assert len(seen) == len(requests)
    errors = [error for result, error in seen if error is not None]
    assert len(errors) == 1 and "no-such-model" in errors[0].message()
    results = {result.get_response().id: result for result, error in seen if error is None}
    assert sorted(results) == sorted(r for r, model, _ in requests if model == "digit")
    for request_id, model, pixels in requests:
        if model != "digit":
            continue
        want = ort_outputs(tiny_model_repository, "digit", {"pixels": pixels})["probabilities"]
        np.testing.assert_array_equal(results[request_id].as_numpy("probabilities"), want)
    final = results["final"].get_response().parameters["triton_final_response"]
    assert final.bool_param is True


async def test_asyncio_client_stream_infer(full_server, tiny_model_repository):
    import tritonclient.grpc.aio as triton_aio

    pixels = [digits(2, seed=i) for i in range(5)]

    async def requests() -> AsyncIterator[dict[str, Any]]:
        for i, p in enumerate(pixels):
            tensor = triton_aio.InferInput("pixels", list(p.shape), "FP32")
            tensor.set_data_from_numpy(p)
            yield {"model_name": "digit", "inputs": [tensor], "request_id": str(i)}

    client = triton_aio.InferenceServerClient(full_server.grpc_target)
    try:
        got = {}
        async for result, error in client.stream_infer(requests()):
            assert error is None
            got[result.get_response().id] = result.as_numpy("probabilities")
    finally:
        await client.close()
    assert sorted(got) == [str(i) for i in range(5)]
    for i, p in enumerate(pixels):
        want = ort_outputs(tiny_model_repository, "digit", {"pixels": p})["probabilities"]
        np.testing.assert_array_equal(got[str(i)], want)
