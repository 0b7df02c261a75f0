"""Start `modelserve serve` on a repository a few times: seconds to ready and RSS.

    python scripts/startup_footprint.py models/ [--runs 3]

Prints, per run, the time from spawning the process to /v2/health/ready answering 200
(every model loaded, checked and warmed), the resident memory then, and after one
TF Serving metadata call per model. Needs psutil (the loadtest extra).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import urllib.request
from pathlib import Path

from loadtest.server_process import free_port, modelserve_server


def one_run(repository: Path, log: Path) -> tuple[float, float, float, list[str]]:
    http_port = free_port()
    server = modelserve_server(repository, http_port, free_port(), log_path=log,
                               env={"MODELSERVE_ACCESS_LOG": "false"})
    with server.start(timeout_s=120):
        ready_s, rss_ready = server.startup_s or 0.0, server.rss_mb()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/repository/index",
                                    data=b"{}", timeout=10) as reply:
            models = [m["name"] for m in json.loads(reply.read()) if m["state"] == "READY"]
        for name in models:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v1/models/{name}/metadata",
                                   timeout=10).read()
        return ready_s, rss_ready, server.rss_mb(), models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ready, rss = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            ready_s, rss_ready, rss_after, models = one_run(args.repository,
                                                            Path(tmp) / f"server-{i}.log")
            ready.append(ready_s)
            rss.append(rss_ready)
            print(f"run {i + 1}: ready in {ready_s:.2f} s, RSS {rss_ready:.0f} MB at ready, "
                  f"{rss_after:.0f} MB after metadata calls; models {', '.join(models)}")
    print(f"median: ready in {statistics.median(ready):.2f} s, RSS {statistics.median(rss):.0f} "
          f"MB ({args.runs} runs)")


if __name__ == "__main__":
    main()
