"""`modelserve bench`: the raw ONNX Runtime ceiling and the served numbers, side by side.

In one run: (1) the in-process ONNX Runtime ceiling per model and batch size, pinned to
the server's CPUs; (2) the real server (startup to ready, RSS) measured per model,
protocol and concurrency by a lean asyncio client pinned to the other CPUs (its CPU
use is measured too); (3) the image model at saturation interleaved with its ceiling:
rounds of the ceiling at every batch size, then the server, so both sample the same
moments of a shared machine whose speed drifts by ±15% within seconds; (4) the
baseline plain FastAPI app on the same digit model, same client. Prints a table and the
targets; writes bench.json, bench.md, bench.png.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtest import bench_report, bench_requests, grpc_client, http_client
from loadtest.bodies import check_answer
from loadtest.server_process import ChildProcess, free_port, modelserve_server, parse_cpus

log = logging.getLogger(__name__)


@dataclass
class Row:
    model: str
    protocol: str
    concurrency: int
    items_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    client_cores: float
    server_cores: float
    error_sample: str = ""


def percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def _run_async(coro):
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # uvloop is not on every platform
        return asyncio.run(coro)


def measure(label: tuple[str, str, int], coro, server: ChildProcess) -> Row:
    """Run one closed-loop measurement; CPU of the client (this process) and server."""
    model, protocol, concurrency = label
    cpu0, server0 = resource.getrusage(resource.RUSAGE_SELF), server.cpu_seconds()
    wall0 = time.perf_counter()
    result: http_client.Measurement = _run_async(coro)
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lat = sorted(result.latencies_ns)
    row = Row(model, protocol, concurrency, len(lat) / result.window_s,
              percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99),
              result.errors, client_cpu / wall, (server.cpu_seconds() - server0) / wall,
              "; ".join(result.error_samples))
    log.info("%-6s %-15s c=%-3d %8.1f items/s p50 %.2f p99 %.2f ms errors %d", model,
             protocol, concurrency, row.items_per_s, row.p50_ms, row.p99_ms, row.errors)
    return row


def http_coro(port: int, bodies: list, concurrency: int, duration: float):
    requests = [http_client.encode_request(f"127.0.0.1:{port}", b) for b in bodies]

    async def go() -> http_client.Measurement:
        result = await http_client.run_closed_loop(port, requests, concurrency=concurrency,
                                                   duration_s=duration)
        if result.first_body and bodies[0].kind != "empty":
            problem = check_answer(bodies[0], json.loads(result.first_body))
            if problem:
                result.error(problem)
        return result

    return go()


def served_row(cfg: Namespace, server: ChildProcess, http_port: int, grpc_port: int,
               label: tuple[str, str, int]) -> Row:
    model, protocol, conc = label
    if protocol in bench_requests.GRPC_PROTOCOLS:
        calls = bench_requests.grpc_calls(protocol, model, http_port, cfg.repository)
        coro = grpc_client.run_closed_loop(f"127.0.0.1:{grpc_port}", calls, concurrency=conc,
                                           duration_s=cfg.duration)
    else:
        bodies = bench_requests.http_bodies(protocol, model, http_port, cfg.repository)
        coro = http_coro(http_port, bodies, conc, cfg.duration)
    return measure(label, coro, server)


def served_rows(cfg: Namespace, server: ChildProcess, http_port: int,
                grpc_port: int) -> list[Row]:
    return [served_row(cfg, server, http_port, grpc_port, (model, protocol, conc))
            for model in cfg.models for protocol in cfg.protocols for conc in cfg.concurrency]


class CeilingProbe:
    """The ceiling child, loaded once and idle between on-demand measurements."""

    def __init__(self, cfg: Namespace, models: list[str]) -> None:
        self.argv = [sys.executable, "-m", "loadtest.ceiling", "--on-demand",
                     "--model-repository", str(cfg.repository), "--models", ",".join(models),
                     "--threads", str(cfg.threads), "--provider", cfg.provider]
        self.cpus = cfg.server_cpus
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> CeilingProbe:
        cpus = self.cpus
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, preexec_fn=(lambda: os.sched_setaffinity(0, cpus))
                                     if cpus else None)
        self._answer()  # "ready"
        return self

    def _answer(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ceiling probe exited with status {self.proc.wait()}")
        return line

    def measure(self, model: str, batch: int, seconds: float) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{model} {batch} {seconds}\n")
        self.proc.stdin.flush()
        return json.loads(self._answer())

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def paired_rounds(cfg: Namespace, server: ChildProcess, ports: tuple[int, int],
                  rows: list[Row]) -> tuple[dict | None, list[Row]]:
    """Image at saturation against its ceiling, interleaved: ``cfg.paired_rounds`` rounds of
    the ceiling at every batch size, then the server, so both sample the same moments of a
    machine whose speed drifts by ±15% from one second to the next. The ceiling is the
    batch size with the most items/s over all rounds; the served figure is all rounds'."""
    image = [r for r in rows if r.model == "image"]
    if not image or cfg.paired_rounds <= 0:
        return None, []
    best = max(image, key=lambda r: r.items_per_s)
    label = (best.model, best.protocol, best.concurrency)
    sizes = [int(b) for b in cfg.batch_sizes.split(",")]
    seconds = max(1.0, cfg.duration / len(sizes))
    raw_items, raw_seconds = dict.fromkeys(sizes, 0.0), dict.fromkeys(sizes, 0.0)
    rounds, served = [], []
    with CeilingProbe(cfg, ["image"]) as probe:
        for _ in range(cfg.paired_rounds):
            raw = {b: probe.measure("image", b, seconds) for b in sizes}
            for b, m in raw.items():
                raw_items[b] += b * m["runs"]
                raw_seconds[b] += m["seconds"]
            batch = max(sizes, key=lambda b: raw[b]["items_per_s"])
            row = served_row(cfg, server, *ports, label)
            served.append(row)
            rounds.append({"ceiling_batch": batch,
                           "ceiling_items_per_s": raw[batch]["items_per_s"],
                           "served_items_per_s": row.items_per_s,
                           "ratio": row.items_per_s / raw[batch]["items_per_s"]})
    by_batch = {b: raw_items[b] / raw_seconds[b] for b in sizes}
    batch = max(sizes, key=lambda b: by_batch[b])
    served_items_per_s = statistics.fmean(r.items_per_s for r in served)  # equal windows
    paired = {"model": "image", "protocol": best.protocol, "concurrency": best.concurrency,
              "rounds": rounds, "ceiling_by_batch": by_batch, "ceiling_batch": batch,
              "ceiling_items_per_s": by_batch[batch], "served_items_per_s": served_items_per_s,
              "ratio": served_items_per_s / by_batch[batch]}
    log.info("image interleaved with its ceiling (%s c=%d): %.1f / %.1f items/s = %.3f",
             best.protocol, best.concurrency, served_items_per_s, by_batch[batch],
             paired["ratio"])
    return paired, served


def empty_rtt(port: int, path: str, server: ChildProcess, duration: float, model: str) -> Row:
    request = [http_client.encode_request(f"127.0.0.1:{port}", None, path)]
    coro = http_client.run_closed_loop(port, request, concurrency=1, duration_s=duration)
    return measure((model, f"GET {path}", 1), coro, server)


def run_ceiling(cfg: Namespace) -> dict:
    argv = [sys.executable, "-m", "loadtest.ceiling", "--model-repository", str(cfg.repository),
            "--models", ",".join(cfg.models), "--batch-sizes", cfg.batch_sizes,
            "--threads", str(cfg.threads), "--provider", cfg.provider,
            "--duration", str(cfg.ceiling_duration)]
    cpus = cfg.server_cpus
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if done.returncode != 0:
        raise RuntimeError(f"ceiling measurement failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def best_of(a: dict, b: dict) -> dict:
    """The ceiling is the best the runtime can do: per batch size, the faster of two runs
    (one before, one after the served measurements, so a noisy moment does not lower it)."""
    merged = {}
    for model, first in a.items():
        batches = {bs: max(m, b[model]["batches"][bs], key=lambda x: x["items_per_s"])
                   for bs, m in first["batches"].items()}
        best = max(batches.items(), key=lambda kv: kv[1]["items_per_s"])
        merged[model] = {**first, "batches": batches, "best_batch": int(best[0]),
                         "best_items_per_s": best[1]["items_per_s"]}
    return merged


def run_server(cfg: Namespace) -> tuple[list[Row], dict]:
    http_port, grpc_port = free_port(), free_port()
    env = {"MODELSERVE_INTRA_OP_THREADS": str(cfg.threads), "MODELSERVE_PROVIDERS": cfg.provider,
           "MODELSERVE_ACCESS_LOG": "false", "MODELSERVE_LOG_LEVEL": "warning"}
    server = modelserve_server(cfg.repository, http_port, grpc_port, cpus=cfg.server_cpus,
                               log_path=cfg.out / "server.log", env=env)
    with server.start(timeout_s=120):
        info: dict[str, Any] = {"startup_s": server.startup_s, "rss_mb": server.rss_mb()}
        rows = [empty_rtt(http_port, "/v2/health/live", server, cfg.duration, "-")]
        rows += served_rows(cfg, server, http_port, grpc_port)
        info["paired"], paired_rows = paired_rounds(cfg, server, (http_port, grpc_port), rows)
        info["paired_errors"] = sum(r.errors for r in paired_rows)
        info["rss_mb_after"] = server.rss_mb()
    return rows, info


def run_baseline(cfg: Namespace) -> list[Row]:
    from serving.models.manifest import list_versions

    version = list_versions(cfg.repository / "digit")[-1]
    port = free_port()
    argv = [sys.executable, "-m", "loadtest.baseline_app", "--port", str(port), "--threads",
            str(cfg.threads), "--model", str(cfg.repository / "digit" / str(version) /
                                             "model.onnx")]
    app = ChildProcess(argv, ready_url=f"http://127.0.0.1:{port}/ready", cpus=cfg.server_cpus,
                       log_path=cfg.out / "baseline.log")
    bodies = bench_requests.task_bodies("digit")
    with app.start(timeout_s=60):
        rows = [empty_rtt(port, "/empty", app, cfg.duration, "baseline")]
        rows += [measure(("digit", "baseline", c), http_coro(port, bodies, c, cfg.duration),
                         app) for c in cfg.concurrency]
    return rows


def config(args: Namespace) -> Namespace:
    quick = args.quick
    server_cpus, client_cpus = parse_cpus(args.server_cpus), parse_cpus(args.client_cpus)
    return Namespace(
        repository=Path(args.model_repository),
        models=["digit"] if quick else [m for m in args.models.split(",") if m],
        protocols=[p for p in args.protocols.split(",") if p],
        concurrency=[1, 16] if quick else [int(c) for c in args.concurrency.split(",")],
        duration=1.0 if quick else args.duration, ceiling_duration=0.3 if quick else 1.0,
        batch_sizes="1,32" if quick else args.batch_sizes, provider=args.provider,
        threads=len(server_cpus) if server_cpus else os.cpu_count() or 1,
        server_cpus=server_cpus, client_cpus=client_cpus, baseline=not args.no_baseline,
        paired_rounds=0 if quick else args.paired_rounds,
        out=Path(args.out or f"reports/bench-{time.strftime('%Y%m%d-%H%M%S')}"))


def run(args: Namespace) -> int:
    cfg = config(args)
    unknown = set(cfg.protocols) - {*bench_requests.HTTP_PROTOCOLS,
                                    *bench_requests.GRPC_PROTOCOLS}
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    started, pressure = time.perf_counter(), bench_report.cpu_pressure()
    first = run_ceiling(cfg)
    if cfg.client_cpus:
        os.sched_setaffinity(0, cfg.client_cpus)  # after the ceiling child: it has its own
    rows, server_info = run_server(cfg)
    if cfg.baseline and "digit" in cfg.models:
        rows += run_baseline(cfg)
    ceiling = best_of(first, run_ceiling(cfg))
    results = {"machine": {**bench_report.machine(cfg), "cpu_pressure_avg60_start": pressure},
               "ceiling": ceiling, "server": server_info,
               "rows": [asdict(r) for r in rows],
               "elapsed_s": time.perf_counter() - started}
    results["targets"] = bench_report.targets(results)
    bench_report.write(results, cfg.out)
    errors = sum(r.errors for r in rows) + server_info["paired_errors"]
    if errors:
        print(f"{errors} requests failed during the benchmark", file=sys.stderr)
    return 1 if errors else 0
