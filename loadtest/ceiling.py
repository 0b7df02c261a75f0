"""The raw in-process ONNX Runtime ceiling: items/s per model and batch size.

Run by the benchmark as a child process pinned to the server's CPUs with the same
thread count and provider the server gets, on the real payloads, so "served / ceiling"
compares like with like:

    python -m loadtest.ceiling --model-repository models --models digit,text,image \
        --batch-sizes 1,8,32,64 --threads 1 --provider cpu --duration 1.0
prints one JSON object: {model: {"providers": [...], "batches": {bs: {...}}}}.

With ``--on-demand`` it loads the models, prints ``ready`` and then measures one
``model batch seconds`` line from stdin at a time (one JSON line each), idle in between:
the benchmark pairs each served measurement with a ceiling taken right next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from loadtest import bodies
from loadtest.payloads import load_payloads
from serving.models.manifest import list_versions, read_manifest

PROVIDERS = {"cpu": ["CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def session(model_path: Path, provider: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = PROVIDERS.get(provider) or ort.get_available_providers()
    return ort.InferenceSession(str(model_path), sess_options=options, providers=providers)


def sample_items(model: str, repository: Path) -> np.ndarray:
    """(n, ...) real inputs for ``model``: test digits, tokenized reviews or images."""
    payloads = load_payloads()
    if model == "digit":
        arrays = bodies.digit_tensors(payloads, 64)
    elif model == "text":
        arrays = bodies.text_tensors(payloads, repository, model, 64)
    else:
        arrays = bodies.image_tensors(payloads, 16)
    return np.concatenate(arrays)


def measure(sess, input_name: str, items: np.ndarray, batch: int, duration_s: float) -> dict:
    reps = -(-batch // len(items))
    feed = {input_name: np.ascontiguousarray(np.concatenate([items] * reps)[:batch])}
    for _ in range(3):
        sess.run(None, feed)
    times: list[float] = []
    stop = time.perf_counter() + duration_s
    while time.perf_counter() < stop or len(times) < 3:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    # items_per_s from the mean (what a busy server gets); _at_p50 shrugs off preemptions.
    return {"items_per_s": batch * len(times) / sum(times), "items_per_s_at_p50": batch / median,
            "p50_ms": 1000 * median, "runs": len(times), "seconds": sum(times)}


def load(repository: Path, model: str, *, provider: str, threads: int):
    """(session, input name, real sample items) for the model's latest version."""
    version_dir = repository / model / str(list_versions(repository / model)[-1])
    manifest = read_manifest(version_dir)
    sess = session(version_dir / manifest.model_file, provider, threads)
    items = sample_items(model, repository).astype(manifest.inputs[0].dtype)
    return sess, manifest, items


def ceiling(repository: Path, model: str, batch_sizes: list[int], *, provider: str,
            threads: int, duration_s: float) -> dict:
    sess, manifest, items = load(repository, model, provider=provider, threads=threads)
    batches = {str(bs): measure(sess, manifest.inputs[0].name, items, bs, duration_s)
               for bs in batch_sizes}
    best = max(batches.items(), key=lambda kv: kv[1]["items_per_s"])
    return {"providers": sess.get_providers(), "version": manifest.version,
            "batches": batches, "best_batch": int(best[0]),
            "best_items_per_s": best[1]["items_per_s"]}


def on_demand(repository: Path, models: list[str], *, provider: str, threads: int,
              commands: TextIO, answers: TextIO) -> None:
    loaded = {m: load(repository, m, provider=provider, threads=threads) for m in models}
    print("ready", file=answers, flush=True)
    for line in commands:
        model, batch, seconds = line.split()
        sess, manifest, items = loaded[model]
        result = measure(sess, manifest.inputs[0].name, items, int(batch), float(seconds))
        print(json.dumps(result), file=answers, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--models", default="digit,text,image")
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--on-demand", action="store_true",
                        help="measure 'model batch seconds' lines from stdin")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if args.on_demand:
        on_demand(args.model_repository, models, provider=args.provider,
                  threads=args.threads, commands=sys.stdin, answers=sys.stdout)
        return 0
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    result = {m: ceiling(args.model_repository, m, sizes, provider=args.provider,
                         threads=args.threads, duration_s=args.duration)
              for m in models}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
