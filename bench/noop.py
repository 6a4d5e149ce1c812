"""Two no-op apps that only batch `pos.sales` and count: the ceilings the worker runs under.

    python -m bench.noop worker          # Faust's agent path (`faust_noop_eps`)
    python -m bench.noop worker --bulk   # the worker's own ingest path (`bulk_noop_eps`)

Both are run by `backroom bench pipeline` as baselines, on the same broker and topic as the
real worker, with no Backroom logic: per batch they send one small record `{"n": events}` to
`<prefix>bench.noop` (the bulk app: `bench.bulk-noop`), so the benchmark times them from broker
timestamps exactly as it times the worker. The agent app batches with Faust's `take_events`. The bulk app is the worker's
app (`streams.app.worker_app`: same consumer, fetch settings and producer) with the same bulk
handler hand-off: each fetch becomes the worker's `RawMessage`s, is counted and made durable,
then acked. What the worker adds on top of it is the inventory and alert logic and its
records; no worker built on this consumer can read faster than this app.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import faust
import orjson

from backroom.settings import Settings, get_settings
from streams.app import fetched_messages, worker_app


def create_noop_app(settings: Settings) -> faust.App:
    app = faust.App(
        f"{settings.app_id}-noop",
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap.split(",")],
        store="memory://",
        datadir=str((settings.data_dir / "worker-noop").resolve()),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
    )
    sales = app.topic(settings.topic("pos.sales"), key_type=bytes, value_type=bytes, partitions=settings.partitions)
    out = app.topic(settings.topic("bench.noop"), key_type=bytes, value_type=bytes, partitions=settings.partitions)

    @app.agent(sales, name="noop")
    async def noop(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):  # type: ignore[attr-defined]
            await out.send(key=b"n", value=orjson.dumps({"n": len(events)}))

    return app


def create_bulk_noop_app(settings: Settings) -> faust.App:
    datadir = (settings.data_dir / "worker-bulk-noop").resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = worker_app(f"{settings.app_id}-bulk-noop", settings, datadir)
    sales = app.topic(settings.topic("pos.sales"), key_type=bytes, value_type=bytes, partitions=settings.partitions)
    out = settings.topic("bench.bulk-noop")

    async def handle(records: Mapping[Any, Sequence[Any]]) -> None:
        messages = fetched_messages("pos.sales", records)
        await app.producer.send(out, b"n", orjson.dumps({"n": len(messages)}), partition=None,
                                timestamp=None, headers=None)
        await app.producer.flush()  # durable before the consumer acks, as the worker's batches

    app.bulk_handlers[sales.get_topic_name()] = handle

    # The worker's sales agent does the same: it keeps the topic subscribed, the bulk handler
    # gets its records.
    @app.agent(sales, name="sales")
    async def subscribed(stream: faust.StreamT) -> None:
        async for _ in stream.events():
            pass

    return app


if __name__ == "__main__":
    bulk = "--bulk" in sys.argv
    if bulk:
        sys.argv.remove("--bulk")
    settings = get_settings()
    (create_bulk_noop_app(settings) if bulk else create_noop_app(settings)).main()
