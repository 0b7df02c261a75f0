"""Request ids: the client's when usable, else a new unique one."""

from __future__ import annotations

import asyncio

from serving import request_ids


def test_a_usable_client_id_is_kept() -> None:
    assert request_ids.accept("abc-123") == "abc-123"
    assert request_ids.accept(b"trace:9f/1=") == "trace:9f/1="


def test_unusable_ids_are_replaced() -> None:
    for bad in ("", "two words", "x" * 129, "tab\there", "é", None, b"\xff\x00"):
        made = request_ids.accept(bad)
        assert made != bad and 0 < len(made) <= 128 and " " not in made


def test_new_ids_are_unique() -> None:
    assert len({request_ids.new_id() for _ in range(10_000)}) == 10_000


async def test_each_request_context_has_its_own_id() -> None:
    async def one(sent: str) -> str:
        request_ids.start(sent)
        await asyncio.sleep(0.01)
        return request_ids.current.get()

    assert await asyncio.gather(one("a"), one("b")) == ["a", "b"]
