"""Providers, raw ONNX Runtime throughput and served (Batcher) throughput, as one table.

    python -m loadtest.gpu_check --model-repository models/ [--providers cuda]

For the image model (or, with no repository, a small conv net built here): the
providers the session obtained; raw ``session.run`` items/s at batch 1..128, with
and without IOBinding; then items/s through serving.batching.Batcher with
max_batch_size 1..128, fed by closed-loop single-item clients (2 x the batch limit
of them), with the mean batch formed. Each point runs ``--seconds``; the whole run
stops adding points after ``--budget-s``. Runs on CPU too (tests use it that way).

``--strategies`` then compares ways of holding the model, e.g. ``one-session:EXHAUSTIVE``
(a single session, ONNX Runtime's default cuDNN search) against ``per-size:HEURISTIC``
(a session per warmed batch size, the server's default on CUDA): load and warm-up
time, the cost of a batch whose size differs from the one before, and Batcher
throughput under clients whose number makes the batch size vary.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


def build_conv_model(path: Path, height: int = 150, width: int = 150) -> Path:
    """A small NHWC conv net (2 strided convs, pooling, dense, sigmoid), fixed weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def const(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32),
                                       name=name)

    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w3", "b3"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["probability"])]
    inits = [const("w1", (32, 3, 3, 3)), const("b1", (32,)), const("w2", (64, 32, 3, 3)),
             const("b2", (64,)), const("w3", (64, 1)), const("b3", (1,))]
    graph = helper.make_graph(
        nodes, "gpu_check_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", height, width, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def find_model(repository: Path | None, name: str) -> Path | None:
    if repository is None:
        return None
    from serving.models.manifest import list_versions
    versions = list_versions(repository / name)
    return repository / name / str(versions[-1]) / "model.onnx" if versions else None


def timed_rate(fn: Callable[[], Any], items: int, seconds: float) -> float:
    """Items/s of calling ``fn`` (``items`` per call) for about ``seconds`` after one call."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 2:
        fn()
        calls += 1
    return calls * items / elapsed


def raw_rates(model_path: Path, providers: Any, sizes: list[int], seconds: float,
              threads: int) -> tuple[list[str], dict[int, tuple[float, float]]]:
    from serving.models.runtime import OrtModel
    plain = OrtModel(model_path, providers=providers, intra_op_threads=threads,
                     use_io_binding=False, batch_buckets=[])
    bound = OrtModel(model_path, providers=providers, intra_op_threads=threads,
                     use_io_binding=True, batch_buckets=[])
    rates = {}
    for size in sizes:
        feeds = plain.example_feeds(size)
        rates[size] = (timed_rate(functools.partial(plain.run, feeds), size, seconds),
                       timed_rate(functools.partial(bound.run, feeds), size, seconds))
    return plain.providers, rates


async def served_rate(model: Any, limit: int, seconds: float, args: argparse.Namespace,
                      clients: int | None = None) -> tuple[float, float, float]:
    """Closed-loop clients (default 2 x limit) submitting one item each through a Batcher.

    Returns (items/s, mean batch formed, median request latency in seconds).
    """
    from serving.batching import Batcher

    sizes: list[int] = []

    class Observer:
        def queue_depth(self, rows: int) -> None:
            pass

        def batch_done(self, size: int, queue_s: Any, compute_s: float) -> None:
            sizes.append(size)

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrent_batches)
    batcher = Batcher(model.run, name="gpu-check", max_batch_size=limit,
                      max_queue_delay_s=args.delay_ms / 1000, max_queue_size=limit * 4,
                      executor=executor, observer=Observer(),
                      max_concurrent_batches=args.concurrent_batches, inline=args.inline)
    item = model.example_feeds(1)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while True:  # at least one request each, however loaded the machine
            start = time.perf_counter()
            await batcher.submit(item)
            latencies.append(time.perf_counter() - start)
            if start >= stop:
                return

    await batcher.submit(item)  # warm
    sizes.clear()
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients or 2 * limit)))
    elapsed = time.perf_counter() - start
    await batcher.close()
    executor.shutdown(wait=True)
    mean_batch = sum(sizes) / len(sizes) if sizes else 0.0
    return len(latencies) / elapsed, mean_batch, float(np.median(latencies))


def compare_strategies(path: Path, args: argparse.Namespace,
                       deadline: float) -> list[dict[str, Any]]:
    """Per strategy: load/warm-up seconds, ms per batch when sizes alternate, and
    Batcher items/s for several client counts (batch limit: the largest warmed size)."""
    from serving.models.runtime import OrtModel

    sizes = [int(s) for s in args.batch_sizes.split(",")]
    clients = [int(c) for c in args.strategy_clients.split(",")]
    rows = []
    print(f"\n{'strategy':<24} {'load s':>7} {'warm s':>7} {'same ms':>8} {'mixed ms':>9} "
          + " ".join(f"{f'c={c} /s':>10}" for c in clients) + "  (mean batch)")
    for strategy in [s for s in args.strategies.split(",") if s]:
        if time.perf_counter() > deadline:
            print(f"budget of {args.budget_s}s spent; stopping before {strategy}")
            break
        kind, _, search = strategy.partition(":")
        start = time.perf_counter()
        model = OrtModel(path, providers=args.providers, intra_op_threads=args.threads,
                         conv_algo_search=search or "HEURISTIC",  # type: ignore[arg-type]
                         session_per_bucket=kind == "per-size")
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        model.warmup(sizes)
        warm_s = time.perf_counter() - start
        cycle = [sizes[0], sizes[len(sizes) // 2], sizes[-1], sizes[len(sizes) // 2]]
        # The same sizes, each run in a block of its own vs in turn.
        same = float(np.mean([_ms_per_batch(model, [size], args.seconds / 8) for size in cycle]))
        mixed = _ms_per_batch(model, cycle, args.seconds / 2)
        row: dict[str, Any] = {"strategy": strategy, "load_s": load_s, "warmup_s": warm_s,
                               "same_size_ms": same, "mixed_sizes_ms": mixed, "served": {}}
        cells = []
        for count in clients:
            limit = max(sizes)
            rate, mean_batch, _ = asyncio.run(served_rate(model, limit, args.seconds, args,
                                                          clients=count))
            row["served"][count] = {"items_per_s": rate, "mean_batch": mean_batch}
            cells.append(f"{rate:>10.1f} ({mean_batch:.1f})")
        rows.append(row)
        print(f"{strategy:<24} {load_s:>7.2f} {warm_s:>7.2f} {same:>8.2f} {mixed:>9.2f} "
              + " ".join(cells), flush=True)
        del model
    return rows


def _ms_per_batch(model: Any, cycle: list[int], seconds: float) -> float:
    """Mean ms per run while running the batch sizes of ``cycle`` in turn (after one
    untimed run of the first)."""
    feeds = [model.example_feeds(size) for size in cycle]
    model.run(feeds[0])
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < len(cycle):
        model.run(feeds[calls % len(cycle)])
        calls += 1
    return elapsed / calls * 1000


def single_item_latency(model: Any, seconds: float, args: argparse.Namespace) -> dict[str, float]:
    """Median latency of one item at concurrency 1: raw run vs through the Batcher."""
    feeds = model.example_feeds(1)
    raw: list[float] = []
    stop = time.perf_counter() + seconds
    while (start := time.perf_counter()) < stop or len(raw) < 3:
        model.run(feeds)
        raw.append(time.perf_counter() - start)
    _, _, served = asyncio.run(served_rate(model, 1, seconds, args, clients=1))
    return {"raw_p50_ms": float(np.median(raw)) * 1000, "served_p50_ms": served * 1000}


def open_model(args: argparse.Namespace) -> tuple[Path, Any]:
    import onnxruntime as ort

    from serving.models.runtime import OrtModel

    repo = Path(args.model_repository) if args.model_repository else None
    path = find_model(repo, args.model)
    if path is None:
        path = build_conv_model(Path(tempfile.mkdtemp()) / "conv.onnx")
    print(f"onnxruntime {ort.__version__}, available providers: "
          f"{ort.get_available_providers()}\nmodel: {path}")
    model = OrtModel(path, providers=args.providers, intra_op_threads=args.threads)
    print(f"providers obtained: {model.providers} (IOBinding in serving: "
          f"{model.use_io_binding}; batches inline: {args.inline})")
    return path, model


def run(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.perf_counter() + args.budget_s
    path, model = open_model(args)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    model.warmup(sizes)
    report: dict[str, Any] = {"model": str(path), "providers": model.providers, "rows": []}
    print(f"{'batch':>6} {'raw/s':>10} {'iobind/s':>10} {'served/s':>10} {'mean batch':>10} "
          f"{'served/raw':>10}")
    for size in sizes:
        if time.perf_counter() > deadline:
            print(f"budget of {args.budget_s}s spent; stopping before batch {size}")
            break
        _, raw = raw_rates(path, args.providers, [size], args.seconds, args.threads)
        raw_plain, raw_bound = raw[size]
        served, mean_batch, _ = asyncio.run(served_rate(model, size, args.seconds, args))
        best = max(raw_plain, raw_bound)
        report["rows"].append({"batch": size, "raw": raw_plain, "iobinding": raw_bound,
                               "served": served, "mean_batch": mean_batch,
                               "served_over_raw": served / best})
        print(f"{size:>6} {raw_plain:>10.1f} {raw_bound:>10.1f} {served:>10.1f} "
              f"{mean_batch:>10.1f} {served / best:>10.1%}", flush=True)
    if time.perf_counter() <= deadline:
        report["concurrency_1"] = latency = single_item_latency(model, args.seconds, args)
        print(f"concurrency 1, one item: raw p50 {latency['raw_p50_ms']:.3f} ms, served p50 "
              f"{latency['served_p50_ms']:.3f} ms")
    if args.strategies:
        del model
        report["strategies"] = compare_strategies(path, args, deadline + args.strategy_budget_s)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", default=None,
                        help="repository holding the model (default: build a small conv net)")
    parser.add_argument("--model", default="image")
    parser.add_argument("--providers", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured point")
    parser.add_argument("--budget-s", type=float, default=200.0,
                        help="no new point starts after this many seconds")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="batcher max queue delay")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ORT)")
    parser.add_argument("--concurrent-batches", type=int, default=1,
                        help="batches in flight at once (the server's inference_threads)")
    parser.add_argument("--inline", action="store_true",
                        help="run batches on the event loop (as the server does for tiny models)")
    parser.add_argument("--strategies", default="",
                        help="also compare these, e.g. one-session:EXHAUSTIVE,per-size:HEURISTIC")
    parser.add_argument("--strategy-clients", default="1,8,32,128",
                        help="closed-loop client counts for the strategy comparison")
    parser.add_argument("--strategy-budget-s", type=float, default=150.0,
                        help="extra seconds the strategy comparison may start new rows in")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
