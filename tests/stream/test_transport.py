"""The hand-stepped delivery of `streams.transport` behaves like an asyncio task.

    pytest tests/stream/test_transport.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from unittest.mock import MagicMock

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.transport import KeyPartitioner, StallWatch, _finish


def stepped(coro: Any) -> Any:
    """What the consumer does: one step by hand, then a task for the rest (if any)."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(stop.value)
        return fut
    return asyncio.ensure_future(_finish(coro, first))


async def test_a_delivery_that_never_waits_completes_on_the_first_step() -> None:
    log: list[str] = []

    async def deliver() -> str:
        log.append("in")
        return "done"

    coro = deliver()
    with pytest.raises(StopIteration):
        coro.send(None)
    assert log == ["in"]


async def test_waiting_on_futures_and_sleep_zero_resumes_with_their_results() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    async def deliver() -> int:
        await asyncio.sleep(0)
        got = await gate
        await asyncio.sleep(0.01)
        return got + 1

    task = stepped(deliver())
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(41)
    assert await task == 42


async def test_an_exception_of_an_awaited_future_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def deliver() -> str:
        try:
            await gate
        except KeyError as exc:
            seen.append(str(exc))
            return "handled"
        return "not reached"

    task = stepped(deliver())
    gate.set_exception(KeyError("full"))
    assert await task == "handled" and seen == ["'full'"]


async def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    cleanup: list[str] = []

    async def deliver() -> None:
        try:
            await gate
        finally:
            cleanup.append("finally ran")

    task = stepped(deliver())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["finally ran"] and gate.cancelled()


class FakeConsumer:
    """The few consumer attributes StallWatch reads, and a record of seeks."""

    def __init__(self, ends: dict[str, int]) -> None:
        self.ends = ends
        self.flow_active = True
        self._read_offset: dict[str, int | None] = {}
        self._committed_offset: dict[str, int | None] = {}
        self._paused_partitions: set[str] = set()
        self._buffered_partitions: set[str] = set()
        self.seeks = 0
        self.log = MagicMock()
        self.active: set[str] = set()
        self.sought: dict[str, int] = {}

    def _get_active_partitions(self) -> set[str]:
        return self.active

    def assignment(self) -> set[str]:
        return set(self.ends)

    async def highwaters(self, *tps: str) -> dict[str, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: str, offset: int) -> None:
        self.seeks += 1
        self.sought[tp] = offset

    async def earliest_offsets(self, *tps: str) -> dict[str, int]:
        return {tp: 0 for tp in tps}


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


async def test_stall_watch_seeks_back_only_a_partition_that_stopped_short_of_its_end() -> None:
    sales, scans = TP("pos.sales", 1), TP("backroom.scans", 0)
    # scans: 39 read, 40 committed, end 41: the last offset is a transaction marker, not a stall
    consumer = FakeConsumer({sales: 159, scans: 41})  # type: ignore[dict-item]
    consumer._read_offset = {sales: 76, scans: 39}  # type: ignore[dict-item]
    consumer._committed_offset = {sales: 78, scans: 40}  # type: ignore[dict-item]
    watch = StallWatch({"pos.sales", "backroom.scans"})
    assert await watch.check(consumer, busy=False) == []  # first look: nothing to compare with
    assert await watch.check(consumer, busy=True) == []  # a batch in flight: not stalled
    assert await watch.check(consumer, busy=False) == []
    consumer._buffered_partitions = {sales}  # type: ignore[arg-type]
    assert await watch.check(consumer, busy=False) == [sales]  # 76 twice, 159 on the broker
    assert consumer.sought == {sales: 78} and consumer.active == {sales} and not consumer._buffered_partitions
    consumer._read_offset[sales] = 100  # type: ignore[index]
    assert await watch.check(consumer, busy=False) == []  # moving again
    consumer._paused_partitions = {sales}  # type: ignore[arg-type]
    assert await watch.check(consumer, busy=False) == []  # paused on purpose
    assert consumer.seeks == 1


async def test_stall_watch_reads_a_partition_with_no_committed_offset_from_its_start() -> None:
    sales = TP("pos.sales", 2)
    consumer = FakeConsumer({sales: 120})  # type: ignore[dict-item]
    consumer._read_offset = {sales: None}  # type: ignore[dict-item]
    watch = StallWatch({"pos.sales"})
    await watch.check(consumer, busy=False)
    assert await watch.check(consumer, busy=False) == [sales]
    assert consumer.sought == {sales: 0}


def test_key_partitioner_matches_kafkas_default_and_stays_bounded() -> None:
    cached, default = KeyPartitioner(size=100), DefaultPartitioner()
    keys = [f"S{i % 50:03d}:SKU-{i:06d}".encode() for i in range(1000)]
    for parts in ([0, 1, 2, 3], list(range(12))):
        for k in keys + keys:  # the second pass is answered from the remembered hashes
            assert cached(k, parts, parts) == default(k, parts, parts)
    assert len(cached._hashes) <= 100
    assert cached(None, [0, 1, 2, 3], [2]) == 2  # no key: an available partition, as Kafka does
