"""The dynamic batcher: batch formation, delay, overload, deadlines, cancellation, errors,
shutdown, and that every response under load is its own request's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.batching import Batcher
from serving.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    Overloaded,
    ShuttingDown,
)
from serving.models.runtime import OrtModel
from tests.fixtures.tiny_models import digit_reference, failing_model, wrong_batch_model


class Model:
    """A real run_batch: y = 2x (+ the row count seen), recording every batch it runs.

    ``gate`` (a threading.Event) holds a batch in the executor until the test opens it,
    so the model is "busy" for exactly as long as a test needs.
    """

    def __init__(self, delay_s: float = 0.0, gated: bool = False) -> None:
        self.batches: list[np.ndarray] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = threading.Event()

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["x"]
        self.batches.append(x.copy())
        self.started.set()
        self.gate.wait(10)
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"y": x * 2, "rows": np.full((x.shape[0], 1), x.shape[0])}

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


class Recorder:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.batches: list[tuple[int, int, float]] = []

    def queue_depth(self, rows: int) -> None:
        self.depths.append(rows)

    def batch_done(self, size, queue_s, compute_s) -> None:
        self.batches.append((size, len(queue_s), compute_s))


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def make(run, executor, **kw) -> Batcher:
    options = {"name": "m", "max_batch_size": 8, "max_queue_delay_s": 0.0,
               "max_queue_size": 64, "executor": executor} | kw
    return Batcher(run, **options)


def x(value: float, rows: int = 1, width: int = 3) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, width), value, dtype=np.float32)}


async def wait_started(model: Model) -> None:
    await asyncio.to_thread(model.started.wait, 5)


async def test_idle_model_runs_at_once_without_queue_delay(executor):
    batcher = make(Model(), executor, max_queue_delay_s=5.0)
    start = time.monotonic()
    out = await batcher.submit(x(1.5))
    # Waiting for the delay would take 5 s; at once is milliseconds (2.5 s of margin).
    assert time.monotonic() - start < 2.5
    np.testing.assert_array_equal(out["y"], np.full((1, 3), 3.0))
    await batcher.close()


async def test_requests_queued_while_busy_form_batches_up_to_max_size(executor):
    model = Model(gated=True)
    batcher = make(model, executor, max_batch_size=4)
    first = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    rest = [asyncio.create_task(batcher.submit(x(i))) for i in range(1, 11)]
    await asyncio.sleep(0.01)
    assert batcher.queue_depth == 10
    model.gate.set()
    results = await asyncio.gather(first, *rest)
    assert model.sizes == [1, 4, 4, 2]
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["y"], np.full((1, 3), 2.0 * i))
    await batcher.close()


async def test_busy_model_waits_up_to_the_queue_delay_for_more_rows(executor):
    delay = 2.0
    model = Model(gated=True)
    batcher = make(model, executor, max_batch_size=8, max_queue_delay_s=delay)
    first = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    second = asyncio.create_task(batcher.submit(x(1)))  # arrives while busy
    await asyncio.sleep(0.01)
    model.gate.set()
    await first
    gathering_since = time.monotonic()  # `second`'s batch gathers from here, for `delay`
    await asyncio.sleep(0.6 * delay)
    third = asyncio.create_task(batcher.submit(x(2)))  # joins the gathering batch
    start = time.monotonic()
    await asyncio.gather(second, third)
    waited = time.monotonic() - start
    assert model.sizes == [1, 2]
    # Dispatched by `second`'s delay: 0.8 s after `third` arrived. Had `third` restarted
    # the wait, 2.0 s; the line between leaves 0.6 s of margin either way.
    assert waited < 0.7 * delay, (waited, time.monotonic() - gathering_since)
    await batcher.close()


async def test_full_batch_does_not_wait_for_the_delay(executor):
    model = Model(gated=True)
    batcher = make(model, executor, max_batch_size=2, max_queue_delay_s=5.0)
    first = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    pending = [asyncio.create_task(batcher.submit(x(i))) for i in (1, 2)]
    model.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *pending), 2.0)
    assert model.sizes == [1, 2]
    await batcher.close()


async def test_full_queue_rejects_at_once(executor):
    model = Model(gated=True)
    batcher = make(model, executor, max_queue_size=3)
    running = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    queued = asyncio.create_task(batcher.submit(x(1, rows=3)))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as info:
        await batcher.submit(x(2))
    assert info.value.retry_after_s and info.value.http_status == 503
    model.gate.set()
    await asyncio.gather(running, queued)
    await batcher.submit(x(3))  # room again
    await batcher.close()


async def test_deadline_in_queue_answers_on_time_and_never_computes(executor):
    model = Model(gated=True)
    batcher = make(model, executor)
    running = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(x(7), deadline=time.monotonic() + 0.05)
    assert 0.04 <= time.monotonic() - start < 1.0
    assert batcher.queue_depth == 0
    model.gate.set()
    await running
    await batcher.submit(x(1))
    assert all(7 not in b for b in model.batches)
    await batcher.close()


async def test_past_deadline_is_refused_before_queueing(executor):
    batcher = make(Model(), executor)
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(x(1), deadline=time.monotonic() - 1)
    await batcher.close()


async def test_cancelled_request_is_skipped_and_others_unaffected(executor):
    model = Model(gated=True)
    batcher = make(model, executor)
    running = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    gone = asyncio.create_task(batcher.submit(x(9)))
    kept = asyncio.create_task(batcher.submit(x(4)))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0)
    assert batcher.queue_depth == 1
    model.gate.set()
    await running
    out = await kept
    np.testing.assert_array_equal(out["y"], np.full((1, 3), 8.0))
    assert gone.cancelled()
    assert all(9 not in b for b in model.batches)
    await batcher.close()


async def test_cancel_while_computing_leaves_the_batch_intact(executor):
    loop_errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
    model = GatedCalls(2)
    batcher = make(model, executor)
    first = asyncio.create_task(batcher.submit(x(0)))
    await asyncio.to_thread(model.started[0].wait, 5)
    a = asyncio.create_task(batcher.submit(x(1)))
    b = asyncio.create_task(batcher.submit(x(2)))
    await asyncio.sleep(0.01)
    model.gates[0].set()
    await first
    await asyncio.to_thread(model.started[1].wait, 5)  # a and b compute together now
    a.cancel()
    model.gates[1].set()
    assert (await b)["y"][0, 0] == 4.0
    with pytest.raises(asyncio.CancelledError):
        await a
    assert [batch[:, 0].tolist() for batch in model.batches] == [[0.0], [1.0, 2.0]]
    await asyncio.sleep(0.05)  # a result set on a's cancelled future would be logged here
    assert loop_errors == []
    await batcher.close()


async def test_output_length_mismatch_fails_the_batch_with_a_clear_error(executor,
                                                                         tiny_model_file):
    model = OrtModel(tiny_model_file(wrong_batch_model()), providers="cpu")
    batcher = make(model.run, executor)
    with pytest.raises(InferenceFailed, match=r"batch of 3 rows.*\[1, 4\]"):
        await batcher.submit({"x": np.ones((3, 4), dtype=np.float32)})
    await batcher.close()


async def test_one_bad_item_fails_only_its_own_request(executor, tiny_model_file):
    model = OrtModel(tiny_model_file(failing_model()), providers="cpu")
    gate = threading.Event()
    runs: list[int] = []

    def run(feeds):
        runs.append(len(feeds["idx"]))
        gate.wait(5)
        return model.run(feeds)

    batcher = make(run, executor)
    first = asyncio.create_task(batcher.submit({"idx": np.array([[0]])}))
    await asyncio.sleep(0.05)
    items = [3, 99, 5, 7]  # 99 is out of the model's range
    tasks = [asyncio.create_task(batcher.submit({"idx": np.array([[i]])})) for i in items]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    # The runtime's message is the log's (detail), not the client's (message).
    assert isinstance(results[2], InferenceFailed) and "Gather" in (results[2].detail or "")
    assert "Gather" not in results[2].message
    assert [float(r["y"][0, 0]) for r in (results[1], results[3], results[4])] == [30, 50, 70]
    assert runs[:2] == [1, 4]  # merged first, then retried one by one
    await batcher.close()


async def test_items_of_different_shapes_are_never_merged(executor):
    model = Model(gated=True)
    batcher = make(model, executor)
    first = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    wide = [asyncio.create_task(batcher.submit(x(i, width=5))) for i in (1, 2)]
    narrow = [asyncio.create_task(batcher.submit(x(i, width=3))) for i in (3, 4)]
    model.gate.set()
    outs = await asyncio.gather(first, *wide, *narrow)
    assert sorted(b.shape for b in model.batches[1:]) == [(2, 3), (2, 5)]
    assert [o["y"].shape[1] for o in outs] == [3, 5, 5, 3, 3]
    assert [float(o["y"][0, 0]) for o in outs] == [0, 2, 4, 6, 8]
    await batcher.close()


@pytest.mark.parametrize("inputs, message", [
    ({}, "no inputs"),
    ({"x": np.ones((2, 3)), "z": np.ones((3, 3))}, "same leading batch dimension"),
    ({"x": np.ones((0, 3))}, "same leading batch dimension"),
    ({"x": np.ones((9, 3))}, "exceed the maximum batch size of 8"),
])
async def test_invalid_requests_are_refused(executor, inputs, message):
    batcher = make(Model(), executor)
    with pytest.raises(InvalidInput, match=message):
        await batcher.submit(inputs)
    await batcher.close()


async def test_drain_finishes_queued_work_and_refuses_new(executor):
    model = Model(gated=True)
    batcher = make(model, executor)
    tasks = [asyncio.create_task(batcher.submit(x(i))) for i in range(4)]
    await wait_started(model)
    drained = asyncio.create_task(batcher.drain(5.0))
    await asyncio.sleep(0.01)
    with pytest.raises(ShuttingDown):
        await batcher.submit(x(1))
    model.gate.set()
    assert await drained is True
    assert len(await asyncio.gather(*tasks)) == 4
    await batcher.close()


class GatedCalls:
    """Call i of run_batch waits for gates[i]: each running batch is released on its own."""

    def __init__(self, calls: int) -> None:
        self.gates = [threading.Event() for _ in range(calls)]
        self.started = [threading.Event() for _ in range(calls)]
        self.calls = 0
        self.batches: list[np.ndarray] = []
        self.lock = threading.Lock()

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            i, self.calls = self.calls, self.calls + 1
            self.batches.append(feeds["x"].copy())
        if i < len(self.gates):
            self.started[i].set()
            self.gates[i].wait(10)
        else:
            time.sleep(0.2)  # later batches take a while: drain has to wait for them
        return {"y": feeds["x"] * 2}


async def test_drain_waits_for_a_batch_still_gathering(executor):
    # A worker gathering its batch holds rows that are neither queued nor running; the
    # other worker going idle must not let drain (and then close) drop them.
    model = GatedCalls(2)
    batcher = make(model, executor, max_concurrent_batches=2, max_queue_delay_s=2.0)
    running = []
    for i, started in enumerate(model.started):  # one batch on each worker
        running.append(asyncio.create_task(batcher.submit(x(i))))
        await asyncio.to_thread(started.wait, 5)
    gathering = asyncio.create_task(batcher.submit(x(7)))  # arrives busy: will gather
    await asyncio.sleep(0.01)
    model.gates[0].set()
    await running[0]
    await asyncio.sleep(0.05)  # worker 1 now gathers `gathering`'s batch for up to 2 s
    model.gates[1].set()
    await running[1]  # both workers done computing: busy 0, queue empty
    start = time.monotonic()
    assert await batcher.drain(5.0) is True
    assert gathering.done() and time.monotonic() - start < 1.0  # drain cut the delay short
    await batcher.close()
    np.testing.assert_array_equal((await gathering)["y"], np.full((1, 3), 14.0))


async def test_close_without_drain_fails_a_gathering_batch_instead_of_hanging(executor):
    model = Model(gated=True)
    batcher = make(model, executor, max_queue_delay_s=5.0)
    running = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    gathering = asyncio.create_task(batcher.submit(x(1)))
    await asyncio.sleep(0.01)
    model.gate.set()
    await running
    await asyncio.sleep(0.05)  # the worker now gathers for up to 5 s
    await batcher.close()
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(gathering, 1.0)


async def test_drain_times_out_and_close_fails_what_is_left(executor):
    model = Model(gated=True)
    batcher = make(model, executor)
    running = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    queued = asyncio.create_task(batcher.submit(x(1)))
    assert await batcher.drain(0.05) is False
    await batcher.close()
    model.gate.set()
    for task in (running, queued):
        with pytest.raises(ShuttingDown):
            await task


async def test_observer_sees_every_row_and_the_queue_empty_at_the_end(executor):
    recorder = Recorder()
    model = Model(delay_s=0.002)
    batcher = make(model, executor, observer=recorder, max_queue_delay_s=0.002,
                   max_queue_size=256)
    rows = [1 + i % 3 for i in range(60)]
    await asyncio.gather(*(batcher.submit(x(i, rows=r)) for i, r in enumerate(rows)))
    assert sum(size for size, _, _ in recorder.batches) == sum(rows)
    assert all(size <= 8 and compute >= 0.002 for size, _, compute in recorder.batches)
    assert recorder.depths[-1] == 0 and max(recorder.depths) > 8
    await batcher.close()


@pytest.mark.parametrize("concurrency, inline", [(1, False), (2, False), (1, True)])
async def test_every_response_is_its_own_request_under_load(executor, tiny_digit_path,
                                                            concurrency, inline):
    model = OrtModel(tiny_digit_path, providers="cpu", intra_op_threads=1)
    batcher = make(model.run, executor, max_batch_size=16, max_queue_delay_s=0.001,
                   max_queue_size=4096, max_concurrent_batches=concurrency, inline=inline)
    rng = np.random.default_rng(concurrency)
    requests = [rng.random((int(rng.integers(1, 5)), 784), dtype=np.float32)
                for _ in range(600)]

    async def client(i: int) -> None:
        await asyncio.sleep(float(rng.random()) * 0.01)
        out = await batcher.submit({"pixels": requests[i]})
        np.testing.assert_allclose(out["probabilities"], digit_reference(requests[i]),
                                   rtol=1e-5, atol=1e-6)

    await asyncio.gather(*(client(i) for i in range(len(requests))))
    await batcher.close()


async def test_inline_batches_isolate_a_bad_item_and_check_lengths(tiny_model_file):
    failing = OrtModel(tiny_model_file(failing_model(), "f.onnx"), providers="cpu")
    batcher = make(failing.run, None, inline=True)
    results = await asyncio.gather(*(batcher.submit({"idx": np.array([[i]])})
                                     for i in (1, 42, 2)), return_exceptions=True)
    assert isinstance(results[1], InferenceFailed)
    assert [float(results[i]["y"][0, 0]) for i in (0, 2)] == [10, 20]
    await batcher.close()
    wrong = OrtModel(tiny_model_file(wrong_batch_model(), "w.onnx"), providers="cpu")
    batcher = make(wrong.run, None, inline=True)
    with pytest.raises(InferenceFailed, match="batch of 2 rows"):
        await batcher.submit({"x": np.ones((2, 4), dtype=np.float32)})
    await batcher.close()


async def test_request_cancelled_while_its_batch_gathers_uses_no_compute(executor):
    model = Model(gated=True)
    batcher = make(model, executor, max_queue_delay_s=0.3)
    first = asyncio.create_task(batcher.submit(x(0)))
    await wait_started(model)
    gone = asyncio.create_task(batcher.submit(x(9)))  # arrives busy: its batch will gather
    kept = asyncio.create_task(batcher.submit(x(5)))
    model.gate.set()
    await first
    await asyncio.sleep(0.05)  # both are taken into the gathering batch by now
    gone.cancel()
    assert (await kept)["y"][0, 0] == 10.0
    assert [b[:, 0].tolist() for b in model.batches] == [[0.0], [5.0]]
    await batcher.close()
