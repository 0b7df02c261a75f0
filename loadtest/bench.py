"""`modelserve bench`: the raw ONNX Runtime ceiling and the served numbers, side by side.

In one run: (1) the in-process ONNX Runtime ceiling per model and batch size, pinned to
the server's CPUs; (2) the real server (startup to ready, RSS) measured per model,
protocol and concurrency by a lean asyncio client pinned to the other CPUs (its CPU
use is measured too, and a row where it was the bottleneck says so); (3) the digit
paths with ints and floats beside the naive FastAPI app and the bare-stack limits (bare
ASGI and RSGI, bare grpc.aio unary and streaming), in interleaved rounds
(bench_limits.py); (4) the image model at saturation interleaved with its ceiling:
rounds of the ceiling at every batch size, then the server, so both sample the same
moments of a shared machine whose speed drifts by ±15% within seconds. Prints a table
and the targets (bench_targets.py); writes bench.json, bench.md, bench.png.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtest import (
    bench_limits,
    bench_report,
    bench_requests,
    bench_targets,
    grpc_client,
    http_client,
)
from loadtest.bench_measure import Row, http_coro, measure
from loadtest.server_process import ChildProcess, free_port, modelserve_server, parse_cpus

log = logging.getLogger(__name__)


def served_row(cfg: Namespace, server: ChildProcess, http_port: int, grpc_port: int,
               label: tuple[str, str, int]) -> Row:
    model, protocol, conc = label
    payload = bench_requests.GRPC_PAYLOADS[protocol][0] \
        if protocol in bench_requests.GRPC_PROTOCOLS else ""
    if protocol in bench_requests.GRPC_PROTOCOLS:
        calls = bench_requests.grpc_calls(protocol, model, http_port, cfg.repository)
        coro = grpc_client.run_closed_loop(f"127.0.0.1:{grpc_port}", calls, concurrency=conc,
                                           duration_s=cfg.duration)
    else:
        bodies = bench_requests.http_bodies(protocol, model, http_port, cfg.repository)
        coro = http_coro(http_port, bodies, conc, cfg.duration)
    return measure((model, protocol, payload, conc), coro, server)


def served_rows(cfg: Namespace, server: ChildProcess, http_port: int,
                grpc_port: int) -> list[Row]:
    """Text and image (digit's paths are measured beside their limits, bench_limits.py)."""
    return [served_row(cfg, server, http_port, grpc_port, (model, protocol, conc))
            for model in cfg.models if model != "digit"
            for protocol in cfg.protocols if protocol != "grpc-stream"
            for conc in cfg.concurrency]


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
    return measure((model, f"GET {path}", "", 1), coro, server)


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
    server = modelserve_server(cfg.repository, http_port, grpc_port, cpus=cfg.server_cpus,
                               log_path=cfg.out / "server.log",
                               env={**cfg.server_env, "MODELSERVE_HTTP_SERVER": cfg.http_server})
    with server.start(timeout_s=120):
        info: dict[str, Any] = {"startup_s": server.startup_s, "rss_mb": server.rss_mb(),
                                "http_server": cfg.http_server}
        rows = [empty_rtt(http_port, "/v2/health/live", server, cfg.duration, "-")]
        if "digit" in cfg.models:
            rows += bench_limits.compare(cfg, server, http_port, grpc_port)
        rows += served_rows(cfg, server, http_port, grpc_port)
        info["paired"], paired_rows = paired_rounds(cfg, server, (http_port, grpc_port), rows)
        info["paired_errors"] = sum(r.errors for r in paired_rows)
        info["rss_mb_after"] = server.rss_mb()
    return rows, info


def config(args: Namespace) -> Namespace:
    quick = args.quick
    server_cpus, client_cpus = parse_cpus(args.server_cpus), parse_cpus(args.client_cpus)
    cfg = Namespace(
        repository=Path(args.model_repository),
        models=["digit"] if quick else [m for m in args.models.split(",") if m],
        protocols=[p for p in args.protocols.split(",") if p],
        concurrency=[1, 16] if quick else [int(c) for c in args.concurrency.split(",")],
        compare_concurrency=[1, 16] if quick else [
            int(c) for c in args.compare_concurrency.split(",")],
        rounds=1 if quick else args.rounds, limits=not args.no_limits,
        http_server=args.http_server, compare_http_server="" if quick or
        args.compare_http_server in ("", "none") else args.compare_http_server,

        duration=1.0 if quick else args.duration, ceiling_duration=0.3 if quick else 1.0,
        batch_sizes="1,32" if quick else args.batch_sizes, provider=args.provider,
        threads=len(server_cpus) if server_cpus else os.cpu_count() or 1,
        server_cpus=server_cpus, client_cpus=client_cpus, baseline=not args.no_baseline,
        paired_rounds=0 if quick else args.paired_rounds,
        out=Path(args.out or f"reports/bench-{time.strftime('%Y%m%d-%H%M%S')}"))
    cfg.server_env = {"MODELSERVE_INTRA_OP_THREADS": str(cfg.threads),
                      "MODELSERVE_PROVIDERS": cfg.provider, "MODELSERVE_ACCESS_LOG": "false",
                      "MODELSERVE_LOG_LEVEL": "warning"}
    return cfg


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
    ceiling = best_of(first, run_ceiling(cfg))
    results = {"machine": {**bench_report.machine(cfg), "cpu_pressure_avg60_start": pressure},
               "ceiling": ceiling, "server": server_info,
               "rows": [asdict(r) for r in rows],
               "elapsed_s": time.perf_counter() - started}
    results["targets"] = bench_targets.targets(results)
    bench_report.write(results, cfg.out)
    errors = sum(r.errors for r in rows) + server_info["paired_errors"]
    if errors:
        print(f"{errors} requests failed during the benchmark", file=sys.stderr)
    return 1 if errors else 0
