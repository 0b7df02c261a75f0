"""Both client libraries, sync and async, against the real server (REST + gRPC)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from clients import grpc as grpc_client
from clients import rest as rest_client
from clients.errors import ClientError
from tests.fixtures.tiny_models import digit_reference, image_reference, text_reference
from tests.integration.grpc.helpers import digits, png

TRANSPORTS = ["rest", "grpc"]


def _sync_client(server, transport: str):
    if transport == "rest":
        return rest_client.Client(server.http_url, timeout=10)
    return grpc_client.Client(server.grpc_target, timeout=10)


def _async_client(server, transport: str):
    if transport == "rest":
        return rest_client.AsyncClient(server.http_url, timeout=10)
    return grpc_client.AsyncClient(f"grpc://{server.grpc_target}", timeout=10)


def _exercise_sync(client) -> dict:
    pixels = digits(2)
    return {
        "text": client.predict_text(["good fun", "awful bad"]),
        "digit": client.predict_digit(pixels, top_k=2),
        "digit_png": client.predict_digit(png((0, 0, 0), (28, 28))),
        "image": client.predict_image([png((255, 0, 0)), png((0, 0, 255))]),
        "infer": client.infer("digit", {"pixels": pixels}),
        "meta": client.model_metadata("text"),
        "models": client.models(),
        "live": client.live(), "ready": client.ready(), "pixels": pixels,
    }


def _check(result: dict) -> None:
    text = result["text"]
    assert (text.model_name, text.model_version) == ("text", "1")
    assert [p.label for p in text.predictions] == ["positive", "negative"]
    assert [p.probability for p in text.predictions] == pytest.approx(
        [text_reference("good fun"), 1 - text_reference("awful bad")], rel=1e-5)
    digit = result["digit"]
    expected = digit_reference(result["pixels"])
    for prediction, row in zip(digit.predictions, expected, strict=True):
        assert prediction.label == str(int(np.argmax(row)))
        assert prediction.probability == pytest.approx(float(row.max()), rel=1e-5)
        assert len(prediction.top) == 2
    (black,) = result["digit_png"].predictions  # all pixels 0: the bias decides
    zeros = digit_reference(np.zeros((1, 784), np.float32))[0]
    assert black.label == str(int(np.argmax(zeros)))
    assert black.probability == pytest.approx(float(zeros.max()), rel=1e-5)
    assert [p.label for p in result["image"].predictions] == ["sneaker", "ankle_boot"]
    assert [p.probability for p in result["image"].predictions] == pytest.approx(
        [image_reference(255, 0, 0), 1 - image_reference(0, 0, 255)], rel=1e-5)
    np.testing.assert_allclose(result["infer"]["probabilities"], expected, rtol=1e-5)
    meta = result["meta"]
    assert meta["name"] == "text" and meta["inputs"][0]["datatype"] == "INT32"
    assert {(m["name"], m["version"], m["state"]) for m in result["models"]} == {
        ("digit", "1", "READY"), ("text", "1", "READY"), ("image", "1", "READY")}
    assert result["live"] is True and result["ready"] is True


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sync_client(full_server, transport):
    def run() -> dict:
        with _sync_client(full_server, transport) as client:
            return _exercise_sync(client)
    _check(await asyncio.to_thread(run))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_async_client(full_server, transport):
    pixels = digits(2)
    async with _async_client(full_server, transport) as client:
        result = {
            "text": await client.predict_text(["good fun", "awful bad"]),
            "digit": await client.predict_digit(pixels, top_k=2),
            "digit_png": await client.predict_digit(png((0, 0, 0), (28, 28))),
            "image": await client.predict_image([png((255, 0, 0)), png((0, 0, 255))]),
            "infer": await client.infer("digit", {"pixels": pixels}),
            "meta": await client.model_metadata("text"),
            "models": await client.models(),
            "live": await client.live(), "ready": await client.ready(), "pixels": pixels,
        }
    _check(result)


@pytest.mark.parametrize(("transport", "status", "invalid"),
                         [("rest", 404, 400), ("grpc", "NOT_FOUND", "INVALID_ARGUMENT")])
async def test_errors_carry_the_server_message(full_server, transport, status, invalid):
    async with _async_client(full_server, transport) as client:
        with pytest.raises(ClientError) as err:
            await client.infer("nope", {"x": np.zeros((1, 2), np.float32)})
    assert err.value.status == status
    assert "nope" in err.value.message and not err.value.retryable
    async with _async_client(full_server, transport) as client:
        with pytest.raises(ClientError) as err:
            await client.infer("digit", {"pixels": np.zeros((1, 5), np.float32)})
    assert err.value.status == invalid
    assert "shape" in err.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_overload_is_retried_with_backoff(make_full_server, hold_model_busy, transport):
    # Models run in the executor (not inline), so hold_model_busy can block them.
    server = await make_full_server(max_queue_size=1, inline_batch_max_ms=0.0)
    served = server.process.dataplane.model("digit")

    def client(retries: int):
        if transport == "grpc":
            return grpc_client.AsyncClient(server.grpc_target, timeout=10, retries=retries)
        return rest_client.AsyncClient(server.http_url, timeout=10, retries=retries)

    busy = hold_model_busy(served)
    async with client(0) as plain, client(3) as patient:
        plug = asyncio.ensure_future(plain.infer("digit", {"pixels": digits(1)}))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(plain.infer("digit", {"pixels": digits(1)}))
        await busy.wait_queued(1)
        with pytest.raises(ClientError) as err:
            await plain.infer("digit", {"pixels": digits(1)})
        assert err.value.retryable and err.value.retry_after == 1.0
        retried = asyncio.ensure_future(patient.infer("digit", {"pixels": digits(1)}))
        await asyncio.sleep(0.2)
        assert not retried.done()  # rejected, waiting out the server's Retry-After
        busy.release()
        await asyncio.gather(plug, queued)
        assert (await retried)["probabilities"].shape == (1, 10)
