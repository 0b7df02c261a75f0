#!/usr/bin/env python3
"""Where each protocol's time goes: py-spy on the real server while one path is loaded.

For every path asked for, the server (``modelserve serve``, pinned to the server CPUs as
the benchmark pins it) takes closed-loop load from the benchmark's own client (64
concurrent one-item digit requests, the benchmark's payloads) while py-spy samples it
(``--nonblocking``: the server is never paused). The summary per path is the share of
the server's busy samples spent in each function, inclusive and self, so the layers can
be read off: HTTP/gRPC machinery, parsing, the dataplane, the batcher, ONNX Runtime,
encoding. docs/benchmarks.md holds the latest output.

    python scripts/profile_paths.py --model-repository models \\
        --paths rest:floats,tfserving:floats,v2:floats,grpc-tfserving,grpc-v2:raw,grpc-stream

Needs py-spy (the dev extra) and ptrace rights over the server (root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtest import bench_requests, grpc_client  # noqa: E402
from loadtest.bench_measure import http_coro, run_async  # noqa: E402
from loadtest.cli import _default_cpus  # noqa: E402
from loadtest.server_process import free_port, modelserve_server, parse_cpus  # noqa: E402

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Frames outside the project are named by their package, ours by module path.
SITE = re.compile(r".*/site-packages/")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    where = SITE.sub("", match["file"])
    where = where.replace(str(ROOT) + "/", "")
    return f"{match['func']} ({where})"


# Layers a busy sample is charged to: its deepest frame that names one (so the JSON
# parsing a dataplane call makes is parsing, not dataplane). Order: first match wins.
LAYERS = [
    ("ONNX Runtime call", r"onnxruntime|OrtModel|runtime\.py|served_model"),
    ("encode the answer", r"json_response|add_output|write_numpy|_build \(|v2_datatype|"
                          r"answer \(|_dtype\.py"),
    ("parse the request", r"json_tensors|parse_json|rest/tensors|codecs/|request_inputs|"
                          r"from_raw|_spec \(|numbers\.py|grpc/inputs|tf_tensors|payloads|"
                          r"encoded_inputs"),
    ("batcher (and asyncio futures, events)", r"batching\.py|asyncio/"),
    ("dataplane, admission, metrics", r"dataplane\.py|admission\.py|metrics|prometheus|"
                                      r"request_ids|logging"),
    ("endpoint / servicer", r"task_routes|tfserving\.py|rest/v2\.py|servicer|v2_stream|"
                            r"grpc/errors|hot_asgi|hot_routes|middleware"),
    ("HTTP: uvicorn and our protocol (socket writes included)",
     r"uvicorn|hot_protocol|connection_limits|httptools"),
    ("event loop's C code (uvloop; grpc.aio's Cython core)", r"^\(event loop"),
    ("other threads (py-spy sees only Thread.run: grpc.aio's poller, the ORT executor)",
     r"^Thread\.run "),
]
LOOP_C = "(event loop, C: uvloop, grpc.aio)"


def stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) per line of py-spy's raw (collapsed) output, frames named."""
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        if frames[-1].startswith("run_process "):
            # Self time of the loop's run call is the event loop's C code: uvloop's polling
            # and socket I/O, and grpc.aio's Cython layer (call objects, (de)serialising).
            frames.append(LOOP_C)
        yield frames, int(count_text)


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return "other"


def layer_table(raws: dict[str, Path]) -> str:
    """Per path (a column), the share of its busy samples spent in each layer."""
    shares = {}
    for path, raw in raws.items():
        counts: collections.Counter[str] = collections.Counter()
        for frames, count in stacks(raw):
            counts[layer_of(frames)] += count
        total = sum(counts.values()) or 1
        shares[path] = {name: 100 * n / total for name, n in counts.items()}
    names = [name for name, _ in LAYERS] + ["other"]
    lines = ["| layer, % of busy samples | " + " | ".join(shares) + " |",
             "|---|" + "---:|" * len(shares)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{shares[p].get(name, 0):.0f}"
                                                for p in shares) + " |")
    return "\n".join(lines)


def summarize(raw: Path, top: int) -> str:
    """Inclusive and self shares of the busy samples, from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in stacks(raw):
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    lines = [f"{total} samples of busy threads", "", "| inclusive % | self % | function |",
             "|---:|---:|---|"]
    for name, count in inclusive.most_common(top):
        lines.append(f"| {100 * count / total:.1f} | {100 * own[name] / total:.1f} | "
                     f"`{name}` |")
    lines += ["", "Most self time:", "", "| self % | function |", "|---:|---|"]
    for name, count in own.most_common(top // 2):
        lines.append(f"| {100 * count / total:.1f} | `{name}` |")
    return "\n".join(lines)


def load(path: str, payload: str, repository: Path, ports: tuple[int, int],
         seconds: float) -> None:
    http_port, grpc_port = ports
    if path in bench_requests.GRPC_PROTOCOLS:
        calls = bench_requests.grpc_calls(path, "digit", http_port, repository, payload)
        coro = grpc_client.run_closed_loop(f"127.0.0.1:{grpc_port}", calls, concurrency=64,
                                           duration_s=seconds)
    else:
        bodies = bench_requests.http_bodies(path, "digit", http_port, repository, payload)
        coro = http_coro(http_port, bodies, 64, seconds)
    result = run_async(coro)
    rate = len(result.latencies_ns) / seconds
    print(f"  load: {rate:,.0f} req/s, {result.errors} errors {result.error_samples[:1]}")


def raw_path(args: argparse.Namespace, path: str, payload: str) -> Path:
    return args.out / f"{path}-{payload or 'default'}.txt"


def profile(path: str, payload: str, args: argparse.Namespace, server, ports) -> Path:
    """py-spy's raw samples of the server while ``path`` is loaded."""
    raw = raw_path(args, path, payload)
    loader = threading.Thread(target=load, args=(path, payload, args.model_repository, ports,
                                                 args.seconds + 2))
    loader.start()
    subprocess.run([args.py_spy, "record", "--pid", str(server.proc.pid), "--duration",
                    str(int(args.seconds)), "--rate", "250", "--format", "raw",
                    "--nonblocking", "--output", str(raw)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loader.join()
    return raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=Path("models"))
    parser.add_argument("--paths", default="rest:floats,tfserving:floats,v2:floats,"
                        "grpc-tfserving,grpc-v2:raw,grpc-stream")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--http-server", default="", help="MODELSERVE_HTTP_SERVER for the run")
    parser.add_argument("--out", type=Path, default=Path("reports/profiles"))
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--from-raw", action="store_true",
                        help="summarize the raw files already in --out (no server, no load)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    items = [item.partition(":")[::2] for item in args.paths.split(",")]
    if args.from_raw:
        raws = {f"{path} {payload}".strip(): raw_path(args, path, payload)
                for path, payload in items}
    else:
        raws = sample(items, args)
    report = ["## Where the time goes, by layer", "", layer_table(raws), ""]
    for name, raw in raws.items():
        report.append(f"### {name}\n\n{summarize(raw, args.top)}\n")
    text = "\n".join(report)
    (args.out / "profiles.md").write_text(text)
    print(text)
    return 0


def sample(items: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Path]:
    """Start the server, load each path in turn under py-spy; the raw file per path."""
    server_cpus, client_cpus = (parse_cpus(c) for c in _default_cpus())
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    ports = (free_port(), free_port())
    env = {"MODELSERVE_INTRA_OP_THREADS": "1", "MODELSERVE_LOG_LEVEL": "warning",
           **({"MODELSERVE_HTTP_SERVER": args.http_server} if args.http_server else {})}
    server = modelserve_server(args.model_repository, *ports, cpus=server_cpus,
                               log_path=args.out / "server.log", env=env)
    raws = {}
    with server.start(timeout_s=120):
        for path, payload in items:
            print(f"{path} {payload}")
            raws[f"{path} {payload}".strip()] = profile(path, payload, args, server, ports)
    return raws


if __name__ == "__main__":
    sys.exit(main())
