"""The benchmark's table, targets, JSON, markdown and plot."""

from __future__ import annotations

import json
import math
import os
import platform
from argparse import Namespace
from pathlib import Path
from typing import Any


def cpu_pressure() -> float | None:
    """Linux PSI: % of the last 60 s in which some runnable task waited for a CPU.

    Near 0 on a quiet machine; a high value means other work competed with the benchmark
    and the served numbers are low bounds."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=") for part in line.split()[1:])
    return float(fields["avg60"])


def machine(cfg: Namespace) -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "provider": cfg.provider,
            "server_cpus": sorted(cfg.server_cpus or []),
            "client_cpus": sorted(cfg.client_cpus or []), "threads": cfg.threads,
            "duration_s": cfg.duration, "platform": platform.platform(),
            "cpu_pressure_avg60_end": cpu_pressure()}


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.1f}" \
        if x >= 100 else f"{x:.2f}"


def served_table(results: dict) -> str:
    """One line per point; "rounds" lists each round's items/s where there were several;
    a client at its CPU limit is marked (client-bound: the figure is the client's)."""
    ceiling = results["ceiling"]
    lines = ["| model | protocol | payload | conc | items/s | rounds | / ceiling | p50 ms | "
             "p95 ms | p99 ms | errors | client cores | server cores | server µs/item |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        best = ceiling.get(r["model"], {}).get("best_items_per_s")
        ratio = f"{r['items_per_s'] / best:.3f}" if best else "-"
        rounds = " / ".join(f"{x:,.0f}" for x in r["rounds"]) if len(r["rounds"]) > 1 else ""
        client = f"{r['client_cores']:.2f}" + (" **client-bound**" if r["client_bound"] else "")
        lines.append(f"| {r['model']} | {r['protocol']} | {r['payload']} | {r['concurrency']} "
                     f"| {_fmt(r['items_per_s'])} | {rounds} | {ratio} | {_fmt(r['p50_ms'])} | "
                     f"{_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {r['errors']} | "
                     f"{client} | {r['server_cores']:.2f} | "
                     f"{_fmt(r.get('server_us_per_item', float('nan')))} |")
    return "\n".join(lines)


def ceiling_table(ceiling: dict) -> str:
    sizes = sorted({int(b) for m in ceiling.values() for b in m["batches"]})
    lines = ["| model | providers | " + " | ".join(f"batch {b} items/s" for b in sizes)
             + " | batch 1 p50 ms |", "|---|---|" + "---:|" * (len(sizes) + 1)]
    for model, m in ceiling.items():
        cells = [_fmt(m["batches"].get(str(b), {}).get("items_per_s")) for b in sizes]
        lines.append(f"| {model} | {','.join(p.replace('ExecutionProvider', '') for p in m['providers'])} | "  # noqa: E501
                     + " | ".join(cells) + f" | {m['batches'].get('1', {}).get('p50_ms', 0):.3f} |")
    return "\n".join(lines)


def paired_table(paired: dict) -> str:
    by_batch = ", ".join(f"batch {b}: {_fmt(v)}" for b, v in paired["ceiling_by_batch"].items())
    lines = ["Each round: the ceiling at each batch size, then the server "
             f"({paired['protocol']}, c={paired['concurrency']}), back to back. Over all "
             f"rounds the ceiling gave {by_batch} items/s.", "",
             "| round | best ceiling items/s | at batch | served items/s | served / ceiling |",
             "|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(paired["rounds"], 1):
        lines.append(f"| {i} | {_fmt(r['ceiling_items_per_s'])} | {r['ceiling_batch']} | "
                     f"{_fmt(r['served_items_per_s'])} | {r['ratio']:.3f} |")
    lines.append(f"| all | {_fmt(paired['ceiling_items_per_s'])} | {paired['ceiling_batch']} | "
                 f"{_fmt(paired['served_items_per_s'])} | **{paired['ratio']:.3f}** |")
    return "\n".join(lines)


def targets_table(targets_: list[dict]) -> str:
    """Throughput ratios also read by server CPU per item ("by CPU"), which the machine's
    load does not move; PASS/FAIL is the issue's reading, by throughput."""
    lines = ["| target | value | limit | result | by CPU | note |",
             "|---|---:|---|---|---:|---|"]
    for t in targets_:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[t["pass"]]
        lines.append(f"| {t['target']} | {t['value']} | {t['limit']} | {verdict} | "
                     f"{t.get('by_cpu', '')} | {t.get('note', '')} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    m = results["machine"]
    return "\n\n".join([
        "# modelserve bench",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs; server on CPUs {m['server_cpus']} "
        f"({m['threads']} ORT threads), client on CPUs {m['client_cpus']}; provider "
        f"{m['provider']}; onnxruntime {m['onnxruntime']}; {m['duration_s']} s per point; "
        f"run took {results['elapsed_s']:.0f} s. CPU pressure (PSI some avg60, % of time "
        f"a task waited for a CPU; ~0 when quiet): start {m['cpu_pressure_avg60_start']}, "
        f"end {m['cpu_pressure_avg60_end']}. The server's HTTP server: "
        f"{results['server'].get('http_server', 'uvicorn')}.",
        "## Targets", targets_table(results["targets"]),
        "## Raw ONNX Runtime ceiling (in-process, server CPUs)", ceiling_table(results["ceiling"]),
        "## Served (one-item requests, closed loop)",
        "(/ ceiling: against the best of the two ceiling runs above, taken minutes apart; "
        "digit rows: the mean of the rounds listed.)",
        served_table(results),
        *(["## Image at saturation, interleaved with its ceiling",
           paired_table(results["server"]["paired"])] if results["server"].get("paired") else []),
        ""])


def write(results: dict, out: Path) -> None:
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = markdown(results)
    (out / "bench.md").write_text(text, encoding="utf-8")
    plot(results, out / "bench.png")
    print(text)
    print(f"written: {out}/bench.json, bench.md, bench.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    served = [r for r in results["rows"] if not r["protocol"].startswith("GET ")]
    models = list(dict.fromkeys(r["model"] for r in served))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in served if r["model"] == model]
        for line in dict.fromkeys((r["protocol"], r["payload"]) for r in rows):
            pts = [(r["concurrency"], r["items_per_s"]) for r in rows
                   if (r["protocol"], r["payload"]) == line]
            ax.plot(*zip(*pts, strict=True), marker="o", label=" ".join(line).strip())
        best = results["ceiling"].get(model, {}).get("best_items_per_s")
        if best:
            ax.axhline(best, color="black", linestyle="--", label="ORT ceiling")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel("items/s")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
