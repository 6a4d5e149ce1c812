"""The durability protocol of one batch, as one class with numbered steps.

    checkpoint = Checkpoint(lambda: app.producer)
    await checkpoint.produce(state_topic, states)                      # the batch's records
    await checkpoint.alerts_then_books(alerts_topic, alerts, write)   # steps 1-3
    await checkpoint.commit(mark)                                     # steps 4-6

Used by every batch the worker handles (streams/worker.py): the agents' batches and the bulk
path's fetches alike. Tests without a broker: `pytest tests/stream/test_checkpoint.py`.

1. Produce the alerts the batch raised.
2. Flush, when there were alerts: they are on the broker before any book records them. After a
   crash the batch is redelivered and its keys are evaluated again against the books; a book
   written ahead of its alert would suppress an alert lost in flight (a crash between 2 and 3
   sends an alert twice with the same alert_id and status, which consumers fold).
3. Write the alert books: their changelog records go to the producer.
4. Flush everything produced for the batch (table changelogs, inventory.state, alerts, dead
   letters) until the producer's buffer is empty: Faust's own flush gives up after 0.1 s without
   progress, and under load that let offsets be committed ahead of the changelog (a kill -9
   then lost those events).
5. Mark the batch's offsets done: `Stream.ack` for each event of an agent's batch; for a bulk
   fetch, `Consumer.mark_bulk_done` (streams/faust_internals.py), which the consumer calls when
   the bulk handler has returned from this step.
6. Commit: Faust's committer commits marked offsets only (every `broker_commit_interval`, or
   after `broker_commit_every` acks), so nothing is committed before step 4 has finished.
Anything that fails before step 5 leaves the offsets unmarked: the batch is read again, and
what it already did is skipped by the per-key offset watermark.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from backroom.records import Record


def record_key(rec: Record) -> str:
    return f"{rec.store_id}:{rec.sku}"  # type: ignore[attr-defined]


class Checkpoint:
    """The steps above over a Faust producer (`send`, `flush`, and its `buffer` with `size` and
    `flush`), looked up on each use: Faust creates it when the worker starts."""

    def __init__(self, producer: Callable[[], Any]) -> None:
        self.producer = producer

    async def produce(self, topic: str, records: Sequence[Record],
                      key_of: Callable[[Any], str] = record_key) -> None:
        """Records straight to the producer, partitioned by key like `Topic.send`: Faust's send
        path (a FutureMessage, callbacks, serializer look-ups per record) cost more than building
        the record, and nothing here uses what it adds."""
        send = self.producer().send
        for rec in records:
            await send(topic, key_of(rec).encode(), rec.to_json(), partition=None, timestamp=None,
                       headers=None)

    async def flush(self) -> None:
        """Until everything produced so far is on the broker (steps 2 and 4)."""
        producer = self.producer()
        buffer = producer.buffer
        while buffer.size:
            await buffer.flush()
        await producer.flush()

    async def alerts_then_books(self, topic: str, alerts: Sequence[Record],
                                write_books: Callable[[], Any]) -> None:
        await self.produce(topic, alerts)  # 1
        if alerts:
            await self.flush()  # 2
        written = write_books()  # 3
        if inspect.isawaitable(written):
            await written

    async def commit(self, mark: Callable[[], Any] | None = None) -> None:
        """Steps 4-6; `mark` marks the batch's offsets done (None: the bulk consumer does)."""
        await self.flush()  # 4
        if mark is not None:
            marked = mark()  # 5
            if inspect.isawaitable(marked):
                await marked
        # 6: Faust's committer, on its own schedule, commits what step 5 marked.


async def ack_all(stream: Any, events: Sequence[Any]) -> None:
    """Step 5 for an agent's batch."""
    for event in events:
        await stream.ack(event)

