"""The worker's feedback agent: `alerts.feedback` -> that store×SKU's tuning in its alert book.

Registered by `streams.app.create_app` (`add_feedback_agent`); the tuning itself is
`backroom.feedback.FeedbackTuner` (docs/floor.md). Tests: `pytest tests/stream/test_feedback_agent.py`.

The topic is keyed store_id:sku like the alert books, so each worker tunes the books it owns.
The book keeps the steps (`tuning`) and the ids of the last feedback events applied, so a
redelivery after a crash changes nothing; the update runs under the lock the inventory agents
hold while they read and write books. The silent-shelf watch of this worker gets the new
CHECK_SHELF threshold at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from backroom.feedback import apply_to_book
from backroom.processing import InventoryProcessor, RawMessage, dead_letter
from backroom.records import AlertFeedback, InvalidEvent, decode
from backroom.settings import Settings

KEEP_IDS = 32  # feedback event ids remembered per book (redeliveries)


def add_feedback_agent(app: faust.App, settings: Settings, topic: faust.TopicT, dead_topic: faust.TopicT,
                       alert_books: Any, inventory: InventoryProcessor, lock: asyncio.Lock) -> Any:
    async def apply(fb: AlertFeedback) -> None:
        key = f"{fb.store_id}:{fb.sku}"
        async with lock:
            applied = apply_to_book(alert_books.get(key), fb, KEEP_IDS)
            if applied is None:
                return
            alert_books[key], tuner = applied
        if inventory.silent is not None:
            inventory.silent.set_threshold(key, tuner.silent_threshold(settings.silent_shelf_threshold, key))
            if fb.alert_type == "CHECK_SHELF" and fb.verdict == "false_alarm":
                inventory.silent.false_alarm(key, fb.ts.timestamp())  # that silence was an ordinary one
            elif fb.alert_type == "CHECK_SHELF":
                inventory.silent.undo_false_alarm(key)

    @app.agent(topic, name="alert-feedback")
    async def feedback_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            raw = RawMessage("alerts.feedback", msg.partition, msg.offset, msg.key, msg.value)
            try:
                fb = decode(AlertFeedback, raw.value, settings.max_event_bytes)
            except InvalidEvent as exc:
                await dead_topic.send(key=raw.key, value=dead_letter(raw, exc.reason).to_json())
                continue
            await apply(fb)

    return feedback_agent
