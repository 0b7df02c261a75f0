"""A small closed-loop HTTP load for one image model, with httpx only.

    python -m loadtest.http_probe --url http://127.0.0.1:8000 --concurrency 1,16,64 --seconds 5

Sends a real-size (150x150) PNG to /v1/image:predict from N concurrent clients and
prints req/s and p50/p99 per concurrency as a table (and JSON with --json). It needs
nothing beyond httpx, numpy and Pillow, so it runs on machines where the full
benchmark's data packages are not installed (the GPU check uses it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def sample_png(size: int = 150) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


async def _client(http: httpx.AsyncClient, body: bytes, stop: float, lat: list[float],
                  failures: list[int]) -> None:
    while time.perf_counter() < stop:
        start = time.perf_counter()
        response = await http.post("/v1/image:predict", content=body,
                                   headers={"content-type": "image/png"})
        if response.status_code == 200:
            lat.append(time.perf_counter() - start)
        else:
            failures.append(response.status_code)


async def measure(url: str, concurrency: int, seconds: float, body: bytes) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        await http.post("/v1/image:predict", content=body, headers={"content-type": "image/png"})
        lat: list[float] = []
        failures: list[int] = []
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, body, start + seconds, lat, failures)
                               for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"concurrency": concurrency, "requests": len(lat), "failures": len(failures),
            "req_per_s": len(lat) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    body = sample_png()
    rows = [asyncio.run(measure(args.url, int(c), args.seconds, body))
            for c in args.concurrency.split(",")]
    print(f"{'conc':>5} {'requests':>9} {'fail':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['concurrency']:>5} {r['requests']:>9} {r['failures']:>5} "
              f"{r['req_per_s']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
