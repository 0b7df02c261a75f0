"""Decoding encoded items: declared costs first, small work inline, the rest in the pool.

Items go through the registered tasks' ``decode`` (serving/tasks/), as the dataplane
sends them."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from serving.codecs import ImageCodec, TextCodec, Tokenizer
from serving.config import Settings
from serving.decode_pool import DecodePool, MemoryBudget, available_cpus
from serving.decoding import Decoder
from serving.errors import DeadlineExceeded, InvalidInput, PayloadTooLarge
from serving.tasks import TASKS
from tests.integration.rest.images import solid_rgb
from tests.reliability.test_hostile_payloads import png_bomb


@dataclass(frozen=True)
class RecordingImageCodec(ImageCodec):
    """The real codec, noting which thread decoded each image."""

    threads: list[str] = field(default_factory=list, compare=False)

    def decode(self, data: bytes) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().decode(data)


def decoder(**settings) -> Decoder:
    return Decoder(Settings(**settings))


async def decode(dec: Decoder, codec: ImageCodec | TextCodec, items: list, deadline: float
                 ) -> np.ndarray:
    """``items`` decoded by the task whose codec ``codec`` is (image or text)."""
    task = TASKS.get("text" if isinstance(codec, TextCodec) else "image")
    return await task.decode(codec, items, dec, deadline)


def soon(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


async def test_small_images_decode_inline_and_large_ones_in_the_pool() -> None:
    codec = RecordingImageCodec(height=8, width=8, max_pixels=1 << 26)
    dec = decoder()
    small = await decode(dec, codec, [solid_rgb(1, 2, 3, size=64)] * 2, soon())
    large = await decode(dec, codec, [solid_rgb(1, 2, 3, size=300)], soon())
    bomb = await decode(dec, codec, [png_bomb(2000, 2000)], soon())  # 4 KB, 4 M pixels
    assert small.shape == (2, 8, 8, 3) and large.shape == bomb.shape == (1, 8, 8, 3)
    loop_thread = threading.current_thread().name
    assert codec.threads[:2] == [loop_thread, loop_thread]
    assert all(name.startswith("decode") for name in codec.threads[2:])
    dec.close()


async def test_a_requests_pixels_are_budgeted_before_any_decodes() -> None:
    codec = RecordingImageCodec(height=8, width=8, max_pixels=1 << 26)
    dec = decoder(max_request_pixels=10_000_000)
    with pytest.raises(PayloadTooLarge, match="declare 12000000 pixels"):
        await decode(dec, codec, [png_bomb(2000, 2000)] * 3, soon())
    assert codec.threads == []
    dec.close()


async def test_an_image_needing_more_than_the_whole_budget_is_413() -> None:
    codec = RecordingImageCodec(height=8, width=8, max_pixels=1 << 26)
    dec = decoder(decode_memory_bytes=16 << 20)  # 2000x2000 needs 40 MB
    with pytest.raises(PayloadTooLarge, match="item 0: image needs about 38 MiB"):
        await decode(dec, codec, [png_bomb(2000, 2000)], soon())
    dec.close()


async def test_items_of_the_wrong_kind_name_their_index() -> None:
    dec = decoder()
    with pytest.raises(InvalidInput, match="item 1: an image must be bytes"):
        await decode(dec, ImageCodec(), [solid_rgb(1, 2, 3), "not bytes"], soon())
    tokenizer = Tokenizer(word_index={"good": 1})
    text = TextCodec(tokenizer, max_length=4, max_chars=10)
    assert (await decode(dec, text, ["good", b"good"], soon())).tolist() == [[1, 0, 0, 0]] * 2
    with pytest.raises(InvalidInput, match="text 0 must be a string, got int"):
        await decode(dec, text, [5], soon())
    with pytest.raises(InvalidInput, match="text 0 has 41 bytes"):  # refused undecoded
        await decode(dec, text, [b"x" * 41], soon())
    with pytest.raises(InvalidInput, match="text 0 is not valid UTF-8"):
        await decode(dec, text, [b"\xff"], soon())
    dec.close()


def test_memory_budget_waits_for_room_and_gives_up_at_the_deadline() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []

    def hold() -> None:
        with budget.reserve(80, soon()):
            order.append("first in")
            time.sleep(0.2)
        order.append("first out")

    first = threading.Thread(target=hold)
    first.start()
    time.sleep(0.05)
    with budget.reserve(50, soon()):
        order.append("second in")
    first.join()
    assert order == ["first in", "first out", "second in"] and budget.free == 100
    with (budget.reserve(80, soon()), pytest.raises(DeadlineExceeded),
          budget.reserve(50, time.monotonic() + 0.05)):
        pass
    with pytest.raises(PayloadTooLarge), budget.reserve(101, soon()):
        pass


async def test_pool_drops_jobs_past_their_deadline() -> None:
    pool = DecodePool(threads=1, memory_bytes=1 << 20)
    assert await pool.run(soon(), threading.current_thread) != threading.current_thread()
    with pytest.raises(DeadlineExceeded):
        await pool.run(time.monotonic() - 1, lambda: None)
    blocker = asyncio.ensure_future(pool.run(soon(), time.sleep, 0.3))
    queued = asyncio.ensure_future(pool.run(soon(), lambda: "ran"))
    await asyncio.sleep(0.05)
    queued.cancel()  # its client left while it waited: it never runs
    await blocker
    assert queued.cancelled()
    pool.close()


def test_available_cpus_follows_the_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert available_cpus(cpu_max) == min(2, available_cpus(tmp_path / "none"))
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == available_cpus(tmp_path / "none") >= 1


async def test_decoding_threads_yield_the_cpu_to_the_event_loop() -> None:
    import os

    pool = DecodePool(threads=1, memory_bytes=1 << 20)
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread_nice = await pool.run(
        soon(), lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert thread_nice == min(19, loop_nice + 10)
    pool.close()
