"""A/B of two checkouts of the server on the digit REST task route, on a shared machine.

    python -m loadtest.ab_rest --model-repository models --variant main=../main \\
        --variant observe=. [--variant 'nost=.:MODELSERVE_SERVER_TIMING=false']

Each variant is NAME=CHECKOUT[:VAR=VALUE,...]: the server runs with that checkout first on
PYTHONPATH (and those environment variables). Every measurement starts a fresh server
process, because on a loaded machine one process's placement and memory layout moved its
figures by more than the difference sought; each round runs every variant once, in a
rotating order, so all of them sample the same moments. Prints per-round figures, then
medians and ratios to the first variant: throughput, server CPU per request (less
sensitive to the machine's load than throughput) and p50 latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from loadtest import http_client
from loadtest.bench_measure import run_async
from loadtest.bodies import Body
from loadtest.server_process import free_port, modelserve_server


def parse_variant(text: str) -> tuple[str, str, dict[str, str]]:
    name, _, rest = text.partition("=")
    root, _, env_text = rest.partition(":")
    env = dict(item.split("=", 1) for item in env_text.split(",") if item)
    return name, str(Path(root).resolve()), env


def digit_bodies(count: int = 32) -> list[Body]:
    rng = np.random.default_rng(0)
    return [Body(path="/v1/digit:predict", content_type="application/json",
                 data=json.dumps({"inputs": [rng.random(784).round(4).tolist()]}).encode())
            for _ in range(count)]


def measure(root: str, env: dict[str, str], repository: Path, seconds: float,
            concurrency: int, bodies: list[Body]) -> tuple[float, float, float, int]:
    """(requests/s, server CPU µs per request, p50 ms, errors) of one fresh server."""
    port = free_port()
    server = modelserve_server(repository, port, -1, env={
        "PYTHONPATH": root, "MODELSERVE_WARMUP_BATCH_SIZES": "[1]", **env})
    server.start()
    try:
        requests = [http_client.encode_request(f"127.0.0.1:{port}", b) for b in bodies]
        run_async(http_client.run_closed_loop(port, requests, concurrency=concurrency,
                                               duration_s=0.5))  # warm
        cpu0 = server.cpu_seconds()
        result = run_async(http_client.run_closed_loop(
            port, requests, concurrency=concurrency, duration_s=seconds))
        cpu = server.cpu_seconds() - cpu0
    finally:
        server.stop()
    latencies = sorted(result.latencies_ns)
    n = max(1, len(latencies))
    return (len(latencies) / result.window_s, cpu / n * 1e6,
            latencies[len(latencies) // 2] / 1e6 if latencies else float("nan"), result.errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME=CHECKOUT[:VAR=VALUE,...]; the first is the baseline")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    names = [v[0] for v in variants]
    figures: dict[str, list[tuple[float, float, float, int]]] = {n: [] for n in names}
    bodies = digit_bodies()
    for r in range(args.rounds):
        shift = r % len(variants)
        for name, root, env in variants[shift:] + variants[:shift]:
            row = measure(root, env, args.model_repository, args.seconds, args.concurrency,
                          bodies)
            figures[name].append(row)
            print(f"round {r:2d} {name:10s} {row[0]:8.1f} req/s  server CPU {row[1]:6.1f} "
                  f"us/req  p50 {row[2]:.2f} ms  errors {row[3]}", flush=True)

    def med(name: str, i: int) -> float:
        return statistics.median(f[i] for f in figures[name])

    base = names[0]
    for name in names:
        rates = [f[0] for f in figures[name]]
        noise = statistics.pstdev(rates) / statistics.mean(rates) * 100
        line = (f"{name:10s} req/s median {med(name, 0):8.1f} (cv {noise:.0f}%)  CPU/req "
                f"median {med(name, 1):6.1f} us  p50 median {med(name, 2):.3f} ms")
        if name != base:
            line += (f"  | vs {base}: throughput {med(name, 0) / med(base, 0):.3f}, "
                     f"CPU/req {med(name, 1) / med(base, 1):.3f}, "
                     f"p50 {med(name, 2) / med(base, 2):.3f}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
