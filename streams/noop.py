"""A Faust app that only batches `pos.sales` and counts: the ceiling Faust itself sets.

    python -m streams.noop worker      # run by `backroom bench pipeline` as a baseline

Same broker, same topic, same `take_events` batching as the real worker, no Backroom logic:
per batch it sends one small record `{"n": events}` to `<prefix>bench.noop`, so the benchmark
can time it from broker timestamps exactly as it times the worker.
"""

from __future__ import annotations

import faust
import orjson

from backroom.settings import Settings, get_settings


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


if __name__ == "__main__":
    create_noop_app(get_settings()).main()
