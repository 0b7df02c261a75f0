"""Turn Locust's CSV output into a summary table, a plot, and a pass/fail verdict.

Reads ``<prefix>_stats.csv`` (totals per endpoint) and ``<prefix>_stats_history.csv``
(one row a second; written with --csv-full-history so the percentiles are the rolling
window, not the running total).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EndpointStats:
    type: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "failure_rate": self.failure_rate}


def _num(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # "N/A" before the first request
        return math.nan


def read_stats(stats_csv: Path) -> list[EndpointStats]:
    """Per-endpoint rows, the Aggregated row last."""
    with stats_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [EndpointStats(type=r["Type"], name=r["Name"], requests=int(r["Request Count"]),
                          failures=int(r["Failure Count"]), rps=_num(r["Requests/s"]),
                          p50_ms=_num(r["50%"]), p95_ms=_num(r["95%"]), p99_ms=_num(r["99%"]),
                          max_ms=_num(r["Max Response Time"])) for r in rows]


def read_history(history_csv: Path) -> dict[str, list[float]]:
    """The Aggregated rows as columns: t (s from start), users, rps, fps, p50, p95, p99.

    req/s and failures/s are differences of the running totals between rows (Locust's own
    "Requests/s" column is a slow moving average that hides a stall).
    """
    cols: dict[str, list[float]] = {k: [] for k in ("t", "users", "rps", "fps",
                                                    "p50", "p95", "p99")}
    with history_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == AGGREGATED]
    if not rows:
        return cols
    start = int(rows[0]["Timestamp"])
    prev_t, prev_n, prev_f = start, 0, 0
    for r in rows:
        t, n, fails = int(r["Timestamp"]), int(r["Total Request Count"]), \
            int(r["Total Failure Count"])
        dt = t - prev_t
        if cols["t"] and dt <= 0:
            continue  # two rows in one second: keep the first
        cols["t"].append(t - start)
        cols["users"].append(_num(r["User Count"]))
        cols["rps"].append((n - prev_n) / dt if dt else 0.0)
        cols["fps"].append((fails - prev_f) / dt if dt else 0.0)
        for p in ("50", "95", "99"):
            cols[f"p{p}"].append(_num(r[f"{p}%"]))
        prev_t, prev_n, prev_f = t, n, fails
    return cols


def markdown_table(stats: list[EndpointStats]) -> str:
    lines = ["| type | endpoint | requests | failures | fail % | req/s | p50 ms | p95 ms "
             "| p99 ms | max ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in stats:
        lines.append(f"| {s.type} | {s.name} | {s.requests} | {s.failures} | "
                     f"{100 * s.failure_rate:.2f} | {s.rps:.1f} | {s.p50_ms:.0f} | "
                     f"{s.p95_ms:.0f} | {s.p99_ms:.0f} | {s.max_ms:.0f} |")
    return "\n".join(lines)


def plot_history(history: dict[str, list[float]], out: Path, title: str) -> Path:
    """Throughput and p50/p95/p99 latency over time, with the user count, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_lat) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    t = history["t"]
    ax_rps.plot(t, history["rps"], label="requests/s", color="tab:blue")
    ax_rps.plot(t, history["fps"], label="failures/s", color="tab:red")
    ax_rps.set_ylabel("requests/s")
    ax_users = ax_rps.twinx()
    ax_users.plot(t, history["users"], label="users", color="tab:gray", linestyle="--")
    ax_users.set_ylabel("users")
    ax_rps.legend(loc="upper left")
    ax_users.legend(loc="upper right")
    for p, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        ax_lat.plot(t, history[p], label=p, color=color)
    ax_lat.set_ylabel("latency ms (10 s window)")
    ax_lat.set_xlabel("seconds from start")
    ax_lat.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def read_exceptions(exceptions_csv: Path) -> list[tuple[int, str]]:
    """(count, message) of errors raised inside the users (bugs, not failed requests)."""
    if not exceptions_csv.is_file():
        return []
    with exceptions_csv.open(newline="") as f:
        return [(int(r["Count"]), r["Message"]) for r in csv.DictReader(f)]


def gate(total: EndpointStats, *, max_failure_rate: float, max_p99_ms: float | None,
         exceptions: Sequence[tuple[int, str]] = ()) -> list[str]:
    """Why the run fails its limits (empty when it passes)."""
    problems = [f"{count}x user error: {message}" for count, message in exceptions]
    if total.requests == 0:
        problems.append("no requests were made")
    if total.failure_rate > max_failure_rate:
        problems.append(f"failure rate {100 * total.failure_rate:.3f}% exceeds "
                        f"{100 * max_failure_rate:.3f}% ({total.failures} of {total.requests})")
    if max_p99_ms is not None and not total.p99_ms <= max_p99_ms:
        problems.append(f"p99 {total.p99_ms:.0f} ms exceeds {max_p99_ms:.0f} ms")
    return problems


def total_row(stats: list[EndpointStats]) -> EndpointStats:
    for s in stats:
        if s.name == AGGREGATED:
            return s
    raise ValueError("no Aggregated row in Locust's stats CSV")
