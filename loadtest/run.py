"""`modelserve loadtest`: serve the models (or target --host), run Locust headless, report.

The report folder holds Locust's CSV files and HTML report, ``loadtest.png``
(throughput and p50/p95/p99 against users over time), ``summary.md`` and
``summary.json`` (requests, failures, req/s, percentiles per endpoint, CPU used by the
load generator and by the server). The exit status is 1 when the failure rate or the
p99 exceed the given limits, so a release can be gated on it.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from argparse import Namespace
from contextlib import ExitStack
from pathlib import Path

from loadtest import report
from loadtest.server_process import ChildProcess, free_port, modelserve_server, parse_cpus

log = logging.getLogger(__name__)
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_argv(args: Namespace, host: str, grpc_target: str, prefix: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-H", host, "-u", str(args.users), "-r", str(args.spawn_rate),
            "-t", f"{args.run_time}s", "--stop-timeout", "5",
            "--csv", str(prefix), "--csv-full-history", "--html", str(prefix) + ".html",
            "--only-summary", "--loglevel", "WARNING",
            "--logfile", str(prefix.parent / "locust.log"),
            "--mix", args.mix, "--grpc-target", grpc_target,
            "--arrival-rate", str(args.arrival_rate if args.shape == "arrival" else 0),
            "--max-in-flight", str(args.max_in_flight),
            "--step-users", str(args.step_users), "--step-seconds", str(args.step_seconds),
            "--max-users", str(args.max_users or args.users)]
    if args.model_repository:
        argv += ["--model-repository", str(args.model_repository)]
    return argv


def run_locust(argv: list[str], *, cpus: set[int] | None, shape: str,
               timeout_s: float, log_path: Path) -> tuple[int, float, float]:
    """Run Locust to completion; returns (exit status, CPU seconds it used, wall seconds)."""
    env = {**os.environ, "LOADTEST_SHAPE": shape if shape in {"step", "ramp"} else "constant"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus
                                else None)
        try:
            status = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait(5)
            log.error("locust did not stop within %.0f s and was killed", timeout_s)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return status, cpu, time.perf_counter() - started


def write_summary(out: Path, stats: list[report.EndpointStats], extra: dict) -> None:
    table = report.markdown_table(stats)
    lines = ["# Load test summary", "", table, ""]
    lines += [f"- {key}: {value}" for key, value in extra.items()]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(
        {"endpoints": [s.as_dict() for s in stats], **extra}, indent=2) + "\n",
        encoding="utf-8")
    print(table)
    for key, value in extra.items():
        print(f"{key}: {value}")


def start_server(args: Namespace, out: Path, stack: ExitStack) -> tuple[str, str, ChildProcess]:
    http_port, grpc_port = free_port(), free_port()
    server = modelserve_server(Path(args.model_repository), http_port, grpc_port,
                               cpus=parse_cpus(args.server_cpus),
                               log_path=out / "server.log")
    stack.enter_context(server.start(timeout_s=args.startup_timeout))
    return f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", server


def run(args: Namespace) -> int:
    out = Path(args.out or f"reports/loadtest-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    with ExitStack() as stack:
        server = None
        if args.host:
            host, grpc_target = args.host.rstrip("/"), args.grpc_target
        else:
            host, grpc_target, server = start_server(args, out, stack)
        server_cpu0 = server.cpu_seconds() if server else 0.0
        status, locust_cpu, wall = run_locust(
            locust_argv(args, host, grpc_target, prefix), cpus=parse_cpus(args.client_cpus),
            shape=args.shape, timeout_s=args.run_time + 60, log_path=out / "locust.out")
        extra = {"locust_exit_status": status, "wall_s": round(wall, 1),
                 "load_generator_cpu_s": round(locust_cpu, 1),
                 "load_generator_cores": round(locust_cpu / max(wall, 1e-9), 2),
                 "shape": args.shape, "users": args.users, "mix": args.mix}
        if server:
            server_cpu = server.cpu_seconds() - server_cpu0
            extra |= {"server_startup_s": round(server.startup_s or 0, 2),
                      "server_rss_mb": round(server.rss_mb(), 1),
                      "server_cpu_s": round(server_cpu, 1),
                      "server_cores": round(server_cpu / max(wall, 1e-9), 2)}
    return finish(args, out, prefix, extra)


def finish(args: Namespace, out: Path, prefix: Path, extra: dict) -> int:
    stats_csv = Path(str(prefix) + "_stats.csv")
    if not stats_csv.is_file():
        print(f"locust wrote no statistics; see {out / 'locust.out'}", file=sys.stderr)
        return 1
    stats = report.read_stats(stats_csv)
    total = report.total_row(stats)
    report.plot_history(report.read_history(Path(str(prefix) + "_stats_history.csv")),
                        out / "loadtest.png",
                        f"modelserve load test: {args.shape}, {args.users} users, {args.mix}")
    problems = report.gate(total, max_failure_rate=args.max_failure_rate,
                           max_p99_ms=args.max_p99_ms, exceptions=report.read_exceptions(
                               Path(str(prefix) + "_exceptions.csv")))
    if extra["locust_exit_status"] not in (0, 1):  # 1 = some requests failed (gated above)
        problems.append(f"locust exited with status {extra['locust_exit_status']}")
    extra["verdict"] = "FAIL: " + "; ".join(problems) if problems else "PASS"
    write_summary(out, stats, extra)
    print(f"report: {out}")
    return 1 if problems else 0
