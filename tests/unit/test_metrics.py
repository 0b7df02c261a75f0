"""Metrics: request/batch series in the exposition, and values merged across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import Metrics


def key(name: str, *pairs: tuple[str, str]) -> tuple[str, tuple]:
    return name, tuple(sorted(pairs))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_latency_and_batches_are_exposed():
    metrics = Metrics()
    metrics.observe_request("digit", "1", "rest", "OK", 0.003)
    metrics.observe_request("digit", "1", "rest", "OK", 0.004)
    metrics.observe_request("digit", "1", "grpc", "UNAVAILABLE", 0.0001)
    observer = metrics.batch_observer("digit", 1)
    observer.queue_depth(5)
    observer.batch_done(3, [0.001, 0.002, 0.0005], 0.01)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    got = samples(body.decode())
    mv = (("model", "digit"), ("version", "1"))
    assert got[key("modelserve_requests_total", *mv, ("protocol", "rest"), ("status", "OK"))] == 2
    grpc = key("modelserve_requests_total", *mv, ("protocol", "grpc"), ("status", "UNAVAILABLE"))
    assert got[grpc] == 1
    assert got[key("modelserve_request_duration_seconds_count", *mv, ("protocol", "rest"))] == 2
    assert got[key("modelserve_queue_duration_seconds_count", *mv)] == 3
    assert got[key("modelserve_compute_duration_seconds_sum", *mv)] == 0.01
    assert got[key("modelserve_batch_size_bucket", ("le", "4.0"), *mv)] == 1
    assert got[key("modelserve_batch_size_bucket", ("le", "2.0"), *mv)] == 0
    assert got[key("modelserve_queue_depth", *mv)] == 5
    assert "process_resident_memory_bytes" in body.decode()


def test_each_metrics_object_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.observe_request("m", "1", "rest", "OK", 0.1)
    series = key("modelserve_requests_total", ("model", "m"), ("version", "1"),
                 ("protocol", "rest"), ("status", "OK"))
    assert samples(a.render()[0].decode())[series] == 1
    assert series not in samples(b.render()[0].decode())


WORKER = textwrap.dedent("""
    import os
    import sys
    from serving.metrics import Metrics
    m = Metrics()
    m.observe_request("digit", "1", "rest", "OK", 0.01)
    m.batch_observer("digit", 1).queue_depth(int(sys.argv[1]))
    m.set_model_loaded("digit", 1, True)
    if sys.argv[2] == "render":
        sys.stdout.write(m.render()[0].decode())
    else:
        sys.stdout.write(str(os.getpid()))
""")


def run_worker(env: dict[str, str], depth: int, action: str) -> str:
    result = subprocess.run([sys.executable, "-c", WORKER, str(depth), action], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_values_merge_across_worker_processes(tmp_path: Path, monkeypatch):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    first = int(run_worker(env, 4, "record"))
    second = int(run_worker(env, 6, "record"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    Metrics.mark_process_dead(first)  # what the parent does when a worker exits
    got = samples(run_worker(env, 0, "render"))
    assert got[key("modelserve_queue_depth", ("model", "digit"), ("version", "1"))] == 6
    Metrics.mark_process_dead(second)
    got = samples(run_worker(env, 0, "render"))
    mv = (("model", "digit"), ("version", "1"))
    # Counters add up over all four processes, dead or alive.
    assert got[key("modelserve_requests_total", *mv, ("protocol", "rest"), ("status", "OK"))] == 4
    assert got[key("modelserve_request_duration_seconds_count", *mv, ("protocol", "rest"))] == 4
    # Live gauges count processes not marked dead: only the renderers' zeros are left.
    assert got[key("modelserve_queue_depth", *mv)] == 0
    assert got[key("modelserve_model_loaded", *mv)] == 1
