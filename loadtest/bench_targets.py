"""The benchmark's targets, read from one run's rows: each a value, a limit, PASS or FAIL.

Throughput ratios compare two points measured in the same rounds (bench_limits.py):
"in every round" targets take the worst round's ratio, the others the ratio of the
means. Each served digit path is read against its own limit: the REST routes against
the bare HTTP stack the server runs on (bare ASGI under uvicorn, bare RSGI under
granian), gRPC unary against bare grpc.aio unary with the same message, the stream
against bare grpc.aio streaming. A target whose figures came from a client-bound
point says so: the limit may then be higher than measured.
"""

from __future__ import annotations

from typing import Any

STARTUP_LIMIT_S = 3.0
RSS_LIMIT_MB = 400.0
NAIVE_RATIO = 2.0
BARE_HTTP_SHARE = 0.85
TENSOR_SHARE = 0.9
GRPC_SHARE = 0.9
P50_SLACK_MS = 0.3
SERVED_HTTP = ("rest", "tfserving", "v2")
GRPC_LIMITS = {"grpc-tfserving": "bare-grpc-predict", "grpc-v2": "bare-grpc-infer",
               "grpc-stream": "bare-grpc-stream"}
HTTP_LIMITS = {"uvicorn": "bare-asgi", "granian": "bare-rsgi"}


def _row(rows: list[dict], model: str, protocol: str, conc: int | None = None,
         payload: str | None = None) -> dict | None:
    for r in rows:
        if r["model"] == model and r["protocol"] == protocol and (
                conc is None or r["concurrency"] == conc) and (
                payload is None or r.get("payload", "") == payload):
            return r
    return None


def _target(name: str, value: float | None, limit: str, ok: bool | None,
            *rows: dict | None, per_cpu: bool = False) -> dict[str, Any]:
    """``per_cpu``: the rows are (a, b) of a throughput ratio a / b; the same ratio read
    from server CPU per item (b's / a's) is added: on a shared machine throughput also
    measures how often each server got a CPU, the CPU an item costs does not."""
    bound = [f"{r['protocol']} {r.get('payload', '')}".strip() for r in rows
             if r and r.get("client_bound")]
    note = f"client-bound: {', '.join(bound)}" if bound else ""
    out = {"target": name, "value": value, "limit": limit, "pass": ok, "note": note}
    a, b = (*rows, None, None)[:2]
    if per_cpu and a and b and a.get("server_us_per_item", 0) > 0:
        out["by_cpu"] = round(b.get("server_us_per_item", float("nan"))
                              / a["server_us_per_item"], 3)
    return out


def targets(results: dict) -> list[dict]:
    rows, server = results["rows"], results["server"]
    out = [_target("startup to ready (s)", round(server["startup_s"], 2),
                   f"< {STARTUP_LIMIT_S}", server["startup_s"] < STARTUP_LIMIT_S),
           _target("server RSS with the models (MB)", round(server["rss_mb"], 1),
                   f"< {RSS_LIMIT_MB:.0f}", server["rss_mb"] < RSS_LIMIT_MB)]
    digit = [r for r in rows if r["model"] == "digit"]
    if digit:
        top = max(r["concurrency"] for r in digit)
        http_limit = HTTP_LIMITS.get(server.get("http_server", "uvicorn"), "bare-asgi")
        out += _naive_targets(digit, top)
        out += _limit_targets(digit, top, http_limit)
        out += _latency_targets(digit, top, http_limit)
        out += _http_server_comparison(digit, top)
    out += _image_target(results)
    out += _idle_latency(rows, results["ceiling"])
    return out


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not (a and b and b["items_per_s"]):
        return None
    return a["items_per_s"] / b["items_per_s"]


def _worst_round(a: dict, b: dict) -> float:
    return min(x / y for x, y in zip(a["rounds"], b["rounds"], strict=True) if y)


def _naive_targets(rows: list[dict], top: int) -> list[dict]:
    out = []
    for payload in ("floats", "ints"):
        rest, naive = _row(rows, "digit", "rest", top, payload), \
            _row(rows, "digit", "naive", top, payload)
        if not (rest and naive and naive["items_per_s"]):
            continue
        worst = _worst_round(rest, naive)
        rounds = len(rest["rounds"])
        out.append(_target(f"task endpoint {payload} / naive FastAPI {payload}, c={top}, worst "
                           f"of {rounds} rounds (mean {_ratio(rest, naive):.2f})",
                           round(worst, 2), f">= {NAIVE_RATIO} in every round",
                           worst >= NAIVE_RATIO, rest, naive, per_cpu=True))
    return out


def _limit_targets(rows: list[dict], top: int, http_limit: str) -> list[dict]:
    out = []
    rest = _row(rows, "digit", "rest", top, "floats")
    for limit in (http_limit, *(v for v in HTTP_LIMITS.values() if v != http_limit)):
        bare = _row(rows, "digit", limit, top, "floats")
        ratio = _ratio(rest, bare)
        if ratio is not None:
            ours = limit == http_limit
            out.append(_target(f"task endpoint floats / {limit} floats, c={top}"
                               + ("" if ours else " (another server's limit)"),
                               round(ratio, 3), f">= {BARE_HTTP_SHARE}" if ours else "reported",
                               ratio >= BARE_HTTP_SHARE if ours else None, rest, bare,
                               per_cpu=True))
    for protocol in ("tfserving", "v2"):
        served = _row(rows, "digit", protocol, top, "floats")
        ratio = _ratio(served, rest)
        if ratio is not None:
            out.append(_target(f"{protocol} REST floats / task endpoint floats, c={top}",
                               round(ratio, 3), f">= {TENSOR_SHARE}", ratio >= TENSOR_SHARE,
                               served, rest, per_cpu=True))
    for protocol, limit in GRPC_LIMITS.items():
        for served in [r for r in rows if r["protocol"] == protocol and r["concurrency"] == top]:
            if protocol == "grpc-stream":
                ratio = _ratio(served, rest)
                if ratio is not None:
                    out.append(_target(f"ModelStreamInfer {top} streams / task endpoint floats "
                                       f"c={top}", round(ratio, 3), ">= 1.0", ratio >= 1.0,
                                       served, rest, per_cpu=True))
            bare = _row(rows, "digit", limit, top, served["payload"])
            ratio = _ratio(served, bare)
            if ratio is not None:
                out.append(_target(f"{protocol} {served['payload']} / {limit}, c={top}",
                                   round(ratio, 3), f">= {GRPC_SHARE}", ratio >= GRPC_SHARE,
                                   served, bare, per_cpu=True))
    return out


def _limit_of(row: dict, http_limit: str) -> str:
    return GRPC_LIMITS.get(row["protocol"], http_limit)


def _latency_targets(rows: list[dict], top: int, http_limit: str) -> list[dict]:
    """p50 at c=1 within 0.3 ms of the path's limit; p99 at the top below the naive app's."""
    out = []
    served = [r for r in rows if r["protocol"] in (*SERVED_HTTP, *GRPC_LIMITS)]
    for r in [r for r in served if r["concurrency"] == 1]:
        bare = _row(rows, "digit", _limit_of(r, http_limit), 1, r["payload"])
        if bare:
            budget = bare["p50_ms"] + P50_SLACK_MS
            out.append(_target(f"p50 c=1 {r['protocol']} {r['payload']} (ms) vs "
                               f"{bare['protocol']} + {P50_SLACK_MS}", round(r["p50_ms"], 3),
                               f"<= {budget:.3f}", r["p50_ms"] <= budget, r, bare))
    for r in [r for r in served if r["concurrency"] == top]:
        payload = r["payload"] if r["payload"] in ("ints", "floats") else "floats"
        naive = _row(rows, "digit", "naive", top, payload)
        if naive:
            out.append(_target(f"p99 c={top} {r['protocol']} {r['payload']} (ms) vs naive "
                               f"{payload}", round(r["p99_ms"], 2), f"< {naive['p99_ms']:.2f}",
                               r["p99_ms"] < naive["p99_ms"], r, naive))
    return out


def _http_server_comparison(rows: list[dict], top: int) -> list[dict]:
    """The same REST paths on the other HTTP server (bench --compare-http-server), read
    as other / ours: throughput at the top concurrency (worst round too), p50 at c=1."""
    out = []
    for other in [r for r in rows if "@" in r["protocol"] and r["concurrency"] == top]:
        ours = _row(rows, "digit", other["protocol"].split("@")[0], top, other["payload"])
        if ours and ours["items_per_s"]:
            out.append(_target(f"{other['protocol']} {other['payload']} / ours, c={top} "
                               f"(worst round {_worst_round(other, ours):.2f})",
                               round(other["items_per_s"] / ours["items_per_s"], 3),
                               "reported", None, other, ours, per_cpu=True))
    for other in [r for r in rows if "@" in r["protocol"] and r["concurrency"] == 1]:
        ours = _row(rows, "digit", other["protocol"].split("@")[0], 1, other["payload"])
        if ours:
            out.append(_target(f"{other['protocol']} {other['payload']} p50 c=1 (ms) vs ours "
                               f"{ours['p50_ms']:.3f}", round(other["p50_ms"], 3), "reported",
                               None, other, ours))
    return out


def _image_target(results: dict) -> list[dict]:
    rows, ceiling, paired = results["rows"], results["ceiling"], results["server"].get("paired")
    if paired:
        share = paired["ratio"]
        return [_target(f"image at saturation / ORT ceiling, {len(paired['rounds'])} "
                        f"interleaved rounds ({paired['protocol']}, "
                        f"c={paired['concurrency']}, ceiling batch {paired['ceiling_batch']})",
                        round(share, 3), ">= 0.85", share >= 0.85)]
    image = [r for r in rows if r["model"] == "image"]
    if image and "image" in ceiling:
        best = max(image, key=lambda r: r["items_per_s"])
        share = best["items_per_s"] / ceiling["image"]["best_items_per_s"]
        return [_target(f"image at saturation / ORT ceiling ({best['protocol']}, "
                        f"c={best['concurrency']})", round(share, 3), ">= 0.85", share >= 0.85)]
    return []


def _idle_latency(rows: list[dict], ceiling: dict) -> list[dict]:
    rest1 = _row(rows, "digit", "rest", 1, "floats")
    empty = _row(rows, "-", "GET /v2/health/live", 1)
    if not (rest1 and empty and "digit" in ceiling):
        return []
    raw1 = ceiling["digit"]["batches"].get("1", {}).get("p50_ms")
    if raw1 is None:
        return []
    budget = raw1 + empty["p50_ms"] + 1.0
    return [_target("digit REST floats p50 at c=1 (ms) vs raw batch-1 + empty round trip "
                    "+ 1 ms", round(rest1["p50_ms"], 3), f"<= {budget:.3f}",
                    rest1["p50_ms"] <= budget, rest1)]
