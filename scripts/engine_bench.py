"""The engine layout against the per-worker layout, in one run (docs/benchmarks.md).

Starts one server per layout at once (the same model repository, each on its own port):
``per-worker`` with ``--workers N`` (N processes with sessions), ``engine`` with N-1
front ends and one engine (the same N processes), and optionally the engine layout
with N front ends (N+1 processes). Then, in rounds so every layout samples the same
moments of a shared machine, for each layout: the latency at concurrency 1 (one client
process) and the throughput at the high concurrency (a multi-process client whose CPU
is reported). Prints medians over the rounds and the targets (issue 17: the engine
adds at most 0.3 ms to the p50 at concurrency 1 and loses at most 15 % of the
throughput at 64); writes engine_bench.json.

  PYTHONPATH=. python scripts/engine_bench.py --model-repository models --model digit

On a GPU machine (scripts/gpu_engine_check.sh) the same script measures the image model
with JPEG uploads (protocol rest) and tensors (v2) at 1..256 concurrent requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest import bench_requests
from loadtest.http_client import encode_request
from loadtest.multiproc_client import run_processes
from loadtest.server_process import ChildProcess, free_port, modelserve_server

log = logging.getLogger("engine_bench")
HOP_TARGET_MS = 0.3
THROUGHPUT_LOSS_TARGET = 0.15


@dataclass
class Point:
    layout: str
    protocol: str
    concurrency: int
    round: int
    items_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cores: float
    client_processes: int


def layouts(workers: int, with_extra: bool) -> dict[str, dict[str, str]]:
    """Label -> server environment. The same process count for the first two."""
    chosen = {f"per-worker x{workers}": {"MODELSERVE_LAYOUT": "per-worker",
                                        "MODELSERVE_WORKERS": str(workers)},
              f"engine 1+{max(1, workers - 1)}": {"MODELSERVE_LAYOUT": "engine",
                                                 "MODELSERVE_WORKERS": str(max(1, workers - 1))}}
    if with_extra:
        chosen[f"engine 1+{workers}"] = {"MODELSERVE_LAYOUT": "engine",
                                         "MODELSERVE_WORKERS": str(workers)}
    return chosen


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else \
        float("nan")


def measure(label: str, port: int, requests: list[bytes], protocol: str, concurrency: int,
            duration_s: float, processes: int, round_: int) -> Point:
    run = run_processes(port, requests, concurrency=concurrency, duration_s=duration_s,
                        processes=processes)
    m = run.measurement
    point = Point(label, protocol, concurrency, round_, len(m.latencies_ns) / m.window_s,
                  percentile(m.latencies_ns, 0.5), percentile(m.latencies_ns, 0.99), m.errors,
                  run.client_cores, run.processes)
    log.info("%-16s %-4s c=%-3d %9.1f items/s  p50 %6.2f ms  p99 %7.2f ms  errors %d  "
             "client %.2f cores (%d proc)", label, protocol, concurrency, point.items_per_s,
             point.p50_ms, point.p99_ms, point.errors, point.client_cores, run.processes)
    if m.errors:
        log.warning("errors: %s", "; ".join(m.error_samples))
    return point


def summarize(points: list[Point]) -> list[dict[str, object]]:
    keys = sorted({(p.layout, p.protocol, p.concurrency) for p in points},
                  key=lambda k: (k[1], k[2], k[0]))
    rows = []
    for key in keys:
        mine = [p for p in points if (p.layout, p.protocol, p.concurrency) == key]
        rows.append({"layout": key[0], "protocol": key[1], "concurrency": key[2],
                     "items_per_s": statistics.median(p.items_per_s for p in mine),
                     "p50_ms": statistics.median(p.p50_ms for p in mine),
                     "p99_ms": statistics.median(p.p99_ms for p in mine),
                     "errors": sum(p.errors for p in mine),
                     "client_cores": statistics.median(p.client_cores for p in mine),
                     "rounds": len(mine)})
    return rows


def verdicts(rows: list[dict[str, object]], base: str, engine: str, low: int,
             high: int, protocol: str) -> list[str]:
    def row(layout: str, concurrency: int) -> dict[str, object] | None:
        return next((r for r in rows if r["layout"] == layout and r["protocol"] == protocol
                     and r["concurrency"] == concurrency), None)
    lines = []
    b1, e1, bh, eh = row(base, low), row(engine, low), row(base, high), row(engine, high)
    if b1 and e1:
        hop = float(e1["p50_ms"]) - float(b1["p50_ms"])  # type: ignore[arg-type]
        lines.append(f"hop at c={low}: engine p50 {e1['p50_ms']:.3f} ms - per-worker "
                     f"{b1['p50_ms']:.3f} ms = {hop:+.3f} ms (target <= +{HOP_TARGET_MS} ms: "
                     f"{'met' if hop <= HOP_TARGET_MS else 'NOT met'})")
    if bh and eh:
        loss = 1 - float(eh["items_per_s"]) / float(bh["items_per_s"])  # type: ignore[arg-type]
        lines.append(f"throughput at c={high}: engine {eh['items_per_s']:.0f} vs per-worker "
                     f"{bh['items_per_s']:.0f} items/s = {-loss:+.1%} (target loss <= "
                     f"{THROUGHPUT_LOSS_TARGET:.0%}: "
                     f"{'met' if loss <= THROUGHPUT_LOSS_TARGET else 'NOT met'})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", required=True, type=Path)
    parser.add_argument("--model", default="digit")
    parser.add_argument("--protocols", default="rest", help="rest (task endpoint), v2, tfserving")
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--workers", type=int, default=2, help="processes per layout")
    parser.add_argument("--extra-front-end", action="store_true",
                        help="also the engine layout with --workers front ends")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--providers", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--out", type=Path, default=Path("reports/engine-bench"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    protocols = args.protocols.split(",")
    servers: dict[str, tuple[ChildProcess, int]] = {}
    try:
        for label, env in layouts(args.workers, args.extra_front_end).items():
            port = free_port()
            slug = label.replace(" ", "_").replace("+", "p")
            server = modelserve_server(args.model_repository, port, -1,
                                       log_path=args.out / f"server-{slug}.log",
                                       env=env | {"MODELSERVE_PROVIDERS": args.providers,
                                                  "MODELSERVE_DRAIN_SECONDS": "0"})
            servers[label] = (server.start(timeout_s=180), port)
        any_port = next(iter(servers.values()))[1]
        bodies = {p: bench_requests.http_bodies(p, args.model, any_port, args.model_repository)
                  for p in protocols}
        points = []
        for round_ in range(args.rounds):
            for protocol in protocols:
                for concurrency in concurrencies:
                    for label, (_, port) in servers.items():
                        requests = [encode_request(f"127.0.0.1:{port}", b)
                                    for b in bodies[protocol]]
                        processes = 1 if concurrency == 1 else args.client_processes
                        points.append(measure(label, port, requests, protocol, concurrency,
                                              args.duration, processes, round_))
    finally:
        for server, _ in servers.values():
            server.stop()
    rows = summarize(points)
    labels = list(servers)
    lines = [f"{r['layout']:<16} {r['protocol']:<5} c={r['concurrency']:<4} "
             f"{r['items_per_s']:>9.1f} items/s  p50 {r['p50_ms']:6.3f} ms  p99 "
             f"{r['p99_ms']:7.2f} ms  errors {r['errors']}  client {r['client_cores']:.2f} "
             f"cores" for r in rows]
    for protocol in protocols:
        lines += verdicts(rows, labels[0], labels[1], min(concurrencies), max(concurrencies),
                          protocol)
    print("\n".join(lines))
    (args.out / "engine_bench.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "summary": rows,
         "points": [asdict(p) for p in points], "verdicts": lines[len(rows):]}, indent=2))
    return 1 if any(p.errors for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())
