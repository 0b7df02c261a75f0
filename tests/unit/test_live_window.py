"""The live window behind the playground's live view: per second, per model, last minute."""

from __future__ import annotations

from serving.metrics import LIVE_LATENCY_EDGES_S, LiveWindow, Metrics


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_latency_batches_and_queue_per_second() -> None:
    clock = Clock()
    window = LiveWindow(seconds=60, clock=clock)
    digit = window.model("digit")
    for latency_ms in [1.0] * 98 + [40.0, 40.0]:
        digit.request(ok=True, latency_s=latency_ms / 1000)
    digit.request(ok=False, latency_s=0.002)
    for size in (1, 1, 8, 32):
        digit.batch(size)
    digit.queue_depth(5)
    digit.queue_depth(12)
    digit.queue_depth(0)
    clock.now += 1.0
    digit.request(ok=True, latency_s=0.003)

    snap = window.snapshot()["models"]["digit"]
    assert len(snap["seconds"]) == 60
    earlier, last = snap["seconds"][-2], snap["seconds"][-1]
    assert (earlier["requests"], earlier["errors"]) == (101, 1)
    # Percentiles are bucket upper edges: within 25% above the true value.
    assert 1.0 <= earlier["p50_ms"] <= 1.25
    assert 40.0 <= earlier["p99_ms"] <= 50.0
    assert (earlier["batches"], earlier["mean_batch"], earlier["max_batch"]) == (4, 10.5, 32)
    assert earlier["queue_max"] == 12 and snap["queue_depth"] == 0
    assert last["requests"] == 1 and last["batches"] == 0 and last["mean_batch"] is None
    whole = snap["window"]
    assert whole["requests"] == 102 and whole["errors"] == 1
    assert whole["requests_per_s"] == round(102 / 60, 3)
    assert whole["batch_sizes"] == {"1": 2, "8": 1, "32": 1}
    assert whole["queue_max"] == 12


def test_seconds_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    window = LiveWindow(seconds=60, clock=clock)
    live = window.model("text")
    live.request(ok=True, latency_s=0.001)
    live.batch(4)
    clock.now += 59.0
    assert window.snapshot()["models"]["text"]["window"]["requests"] == 1
    clock.now += 1.0  # the slot of the first second is reused for this one
    snap = window.snapshot()["models"]["text"]
    assert snap["window"]["requests"] == 0 and snap["window"]["batch_sizes"] == {}
    live.request(ok=True, latency_s=0.001)
    assert window.snapshot()["models"]["text"]["seconds"][-1]["requests"] == 1
    assert window.snapshot()["models"]["text"]["window"]["requests"] == 1


def test_an_idle_model_reports_no_percentiles() -> None:
    window = LiveWindow(seconds=10, clock=Clock())
    window.model("image")
    snap = window.snapshot()
    assert snap["window_s"] == 10
    second = snap["models"]["image"]["seconds"][0]
    assert second["requests"] == 0 and second["p50_ms"] is None and second["p99_ms"] is None


def test_latencies_beyond_the_last_edge_land_in_the_last_bucket() -> None:
    window = LiveWindow(seconds=5, clock=Clock())
    window.model("slow").request(ok=True, latency_s=10_000.0)
    p99 = window.snapshot()["models"]["slow"]["window"]["p99_ms"]
    assert p99 == round(LIVE_LATENCY_EDGES_S[-1] * 1000, 3)


def test_metrics_feed_the_live_window() -> None:
    metrics = Metrics()
    observer = metrics.batch_observer("digit", 3)
    metrics.observe_request("digit", "3", "rest", "OK", 0.004)
    metrics.observe_request("digit", "3", "grpc", "INVALID_ARGUMENT", 0.001)
    observer.queue_depth(2)
    observer.batch_done(2, [0.001, 0.001], 0.0005)
    snap = metrics.live.snapshot()["models"]["digit"]
    assert snap["version"] == "3"
    assert snap["window"]["requests"] == 2 and snap["window"]["errors"] == 1
    assert snap["window"]["batch_sizes"] == {"2": 1} and snap["window"]["queue_max"] == 2
