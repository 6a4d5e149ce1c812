"""Kafka → dashboard bridge: reads inventory.state, alerts and shelf.observations into a LiveView.

Runs inside the dashboard (`backroom dashboard`); the websocket side is `dashboard/hub.py`.
Standalone check against a running broker:

    python -m consumers.ws_bridge        # prints the view's counts every second

It reads every partition from the beginning with no consumer group (nothing is committed), so a
restarted dashboard rebuilds the same snapshot from the topics. A broker that is down or topics
that do not exist yet are retried with a back-off; `status` says which, for /api/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from backroom.settings import Settings
from dashboard.live import LiveView

log = logging.getLogger("backroom.dashboard.bridge")

TOPICS = ("inventory.state", "alerts", "shelf.observations")


class KafkaBridge:
    def __init__(
        self, settings: Settings, view: LiveView, consumer_factory: Callable[..., Any] | None = None
    ) -> None:
        self.settings = settings
        self.view = view
        self._factory = consumer_factory
        self.status: dict[str, Any] = {
            "connected": False,
            "records": 0,
            "bad_records": 0,
            "last_error": None,
            "topics": list(TOPICS),
        }
        self._apply = {
            settings.topic("inventory.state"): view.apply_state,
            settings.topic("alerts"): view.apply_alert,
            settings.topic("shelf.observations"): view.apply_observation,
        }
        self._task: asyncio.Task[None] | None = None

    def _consumer(self) -> Any:
        if self._factory is not None:
            return self._factory(self.settings, *TOPICS)
        from producers.kafka import make_consumer

        # No group: every partition from the beginning, nothing committed. A short metadata
        # age so topics created after the dashboard started are picked up within seconds.
        return make_consumer(self.settings, *TOPICS, group_id=None, metadata_max_age_ms=3000,
                             max_partition_fetch_bytes=4 * 1024 * 1024)

    def handle(self, topic: str, raw: bytes | None) -> None:
        apply = self._apply.get(topic)
        if apply is None or raw is None:
            return
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.status["bad_records"] += 1
            return
        if not isinstance(rec, dict):
            self.status["bad_records"] += 1
            return
        apply(rec)  # the view ignores stale versions and records without keys
        self.status["records"] += 1

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer = self._consumer()
            try:
                await consumer.start()
                self.status.update(connected=True, last_error=None)
                backoff = 0.5
                while True:
                    batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
                    for tp, records in batch.items():
                        for r in records:
                            self.handle(tp.topic, r.value)
                    if batch:
                        # Yield so the hub can flush and websockets can send between batches.
                        await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down, topic deleted…: keep the page up, retry
                self.status.update(connected=False, last_error=f"{type(exc).__name__}: {exc}")
                log.warning("dashboard bridge: %s; retrying in %.1fs", exc, backoff)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            self.status["connected"] = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="dashboard-kafka-bridge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


async def _main() -> None:
    from backroom.settings import get_settings

    view = LiveView()
    bridge = KafkaBridge(get_settings(), view)
    bridge.start()
    while True:
        await asyncio.sleep(1)
        print(orjson.dumps({"status": bridge.status, "counts": view.counts}).decode(), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
