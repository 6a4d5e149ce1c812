"""The durability protocol (`streams.checkpoint.Checkpoint`) with a fake producer: the order of
its steps, and that nothing is marked done when a flush fails.

    pytest tests/stream/test_checkpoint.py
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backroom.records import Alert
from streams.checkpoint import Checkpoint, ack_all


class FakeBuffer:
    """Faust's producer buffer: `size` records waiting; each flush sends at most `per_flush`."""

    def __init__(self, log: list[str], per_flush: int = 2) -> None:
        self.log, self.per_flush, self.size = log, per_flush, 0

    async def flush(self) -> None:
        self.size = max(0, self.size - self.per_flush)
        self.log.append("buffer.flush")


class FakeProducer:
    def __init__(self, fail_flush: bool = False) -> None:
        self.log: list[str] = []
        self.buffer = FakeBuffer(self.log)
        self.on_broker: list[tuple[str, bytes]] = []
        self.pending: list[tuple[str, bytes]] = []
        self.fail_flush = fail_flush

    async def send(self, topic: str, key: bytes, value: bytes, **_: Any) -> None:
        self.pending.append((topic, key))
        self.log.append(f"send {topic}")

    async def flush(self) -> None:
        if self.fail_flush:
            raise ConnectionError("broker gone")
        assert self.buffer.size == 0, "the buffer is drained before the producer's own flush"
        self.on_broker += self.pending
        self.pending.clear()
        self.log.append("flush")


def alert(sku: str) -> Alert:
    return Alert.model_validate({"alert_id": f"S1:{sku}:RESTOCK_SHELF:1", "type": "RESTOCK_SHELF",
                                 "status": "open", "store_id": "S1", "sku": sku, "ts": datetime(2026, 11, 27, 9, 1, tzinfo=UTC),
                                 "severity": "high", "message": "shelf low", "action": "move 3 units",
                                 "evidence": {}})


async def test_alerts_are_on_the_broker_before_the_books_that_record_them() -> None:
    producer = FakeProducer()
    checkpoint = Checkpoint(lambda: producer)
    books: dict[str, str] = {}

    def write_books() -> None:
        # Step 3 sees step 1's alerts on the broker already.
        assert producer.on_broker == [("alerts", b"S1:A")]
        books["S1:A"] = "opened"
        producer.log.append("books")

    await checkpoint.alerts_then_books("alerts", [alert("A")], write_books)
    assert producer.log == ["send alerts", "flush", "books"] and books == {"S1:A": "opened"}


async def test_without_alerts_the_books_are_written_with_no_flush() -> None:
    producer = FakeProducer()
    log = producer.log
    await Checkpoint(lambda: producer).alerts_then_books("alerts", [], lambda: log.append("books"))
    assert log == ["books"]


async def test_offsets_are_marked_only_after_everything_produced_is_flushed() -> None:
    producer = FakeProducer()
    checkpoint = Checkpoint(lambda: producer)
    await checkpoint.produce("inventory.state", [alert("A"), alert("B")])
    producer.buffer.size = 5  # changelog records still waiting in Faust's buffer

    def mark() -> None:
        assert not producer.pending and producer.buffer.size == 0
        producer.log.append("mark")

    await checkpoint.commit(mark)
    assert producer.log == ["send inventory.state", "send inventory.state",
                            "buffer.flush", "buffer.flush", "buffer.flush", "flush", "mark"]


async def test_a_failed_flush_leaves_the_offsets_unmarked() -> None:
    producer = FakeProducer(fail_flush=True)
    marked: list[str] = []

    async def mark() -> None:
        marked.append("marked")

    with pytest.raises(ConnectionError):
        await Checkpoint(lambda: producer).commit(mark)
    assert marked == []
    # The bulk path marks in the consumer once the handler returned: here it never returns.
    with pytest.raises(ConnectionError):
        await Checkpoint(lambda: producer).commit(None)


async def test_an_agents_batch_is_acked_event_by_event() -> None:
    acked: list[int] = []

    class Stream:
        async def ack(self, event: int) -> None:
            acked.append(event)

    producer = FakeProducer()
    await Checkpoint(lambda: producer).commit(lambda: ack_all(Stream(), [1, 2, 3]))
    assert acked == [1, 2, 3] and producer.log == ["flush"]
