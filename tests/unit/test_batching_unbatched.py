"""A model without a batch dimension: each request runs alone, its tensors as given."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from serving.batching import Batcher


async def test_requests_are_never_merged_and_outputs_are_not_split() -> None:
    seen: list[tuple[int, ...]] = []
    gate = threading.Event()

    def column_sums(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        gate.wait(5)
        seen.append(feeds["x"].shape)
        return {"sums": feeds["x"].sum(axis=0)}  # no leading batch dimension

    with ThreadPoolExecutor(max_workers=1) as pool:
        batcher = Batcher(column_sums, name="fixed", max_batch_size=8, max_queue_delay_s=0.05,
                          max_queue_size=16, executor=pool, batch_dim=False)
        await batcher.start()
        assert batcher.max_batch_size == 1
        calls = [asyncio.create_task(batcher.submit({"x": np.full((3, 4), i, np.float32)}))
                 for i in range(3)]
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 2  # one row each, whatever the first dim says
        gate.set()
        results = await asyncio.gather(*calls)
        await batcher.close()
    assert seen == [(3, 4)] * 3
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["sums"], np.full(4, 3 * i, np.float32))
