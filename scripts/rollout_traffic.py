"""Send MNIST test digits to a running server as many users would; count who answered.

    python scripts/rollout_traffic.py --url http://127.0.0.1:8000 --requests 2000

Each request is one test digit sent to ``/v1/digit:predict`` with a routing key
(``--users`` distinct ones), so the server's traffic split decides the version and
keeps each user on one. Prints, per version that answered: requests, share, users,
accuracy on the digits it saw; and the failures (there should be none). Used by the
walkthrough in docs/rollout.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections

import httpx
import numpy as np

from serving.routing import ROUTING_KEY_HEADER
from training.datasets import load_mnist


async def run(url: str, requests: int, users: int, concurrency: int) -> int:
    split = load_mnist()
    images = split.x_test.reshape(len(split.x_test), -1).astype(np.float32) / 255.0
    served: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    user_versions: dict[str, set[str]] = collections.defaultdict(set)
    failures: collections.Counter[str] = collections.Counter()
    indexes = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in indexes:
            user = f"user-{i % users}"
            try:
                response = await client.post(
                    f"{url}/v1/digit:predict", json={"inputs": [images[i % len(images)].tolist()]},
                    headers={ROUTING_KEY_HEADER: user})
            except httpx.TransportError as exc:  # counted: a reset is a failure too
                failures[type(exc).__name__] += 1
                continue
            if response.status_code != 200:
                failures[str(response.status_code)] += 1
                continue
            body = response.json()
            version = body["model_version"]
            right = body["predictions"][0]["label"] == str(split.y_test[i % len(images)])
            served[version]["requests"] += 1
            served[version]["right"] += right
            user_versions[user].add(version)

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    for version in sorted(served, key=int):
        counts = served[version]
        on_it = sum(seen == {version} for seen in user_versions.values())
        print(f"version {version}: {counts['requests']:5d} requests "
              f"({counts['requests'] / requests:6.1%}), {on_it:4d} users, "
              f"accuracy {counts['right'] / counts['requests']:.4f}")
    moved = sum(len(seen) > 1 for seen in user_versions.values())
    print(f"users answered by more than one version: {moved}; failed requests: "
          f"{sum(failures.values())} {dict(failures) or ''}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    return asyncio.run(run(args.url, args.requests, args.users, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
