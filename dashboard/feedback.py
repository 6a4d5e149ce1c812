"""The dashboard's one-tap "false alarm": `POST /api/alerts/{alert_id}/false-alarm`.

    app.include_router(feedback_router(settings, view, kafka=True))   # dashboard/server.py

Body (optional JSON): `{"undo": true}` takes one step back, `{"note": "..."}` says why, `{"by":
"..."}` who. The alert must be known to the page (404 otherwise). The verdict becomes an
`AlertFeedback` on the `alerts.feedback` topic (keyed store_id:sku), stamped with the page's
event time (`view.now`), and the alert is marked `false_alarm` on the page. The worker's
feedback agent tunes that store×SKU's threshold (backroom/feedback.py). 503 when the broker does
not take it (the mark is not set then: nothing is claimed that was not recorded). Auth, Host and
Origin checks are the dashboard's middleware, as for ack and resolve. Tests:
`pytest tests/unit/test_feedback.py tests/browser -k false_alarm`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field, ValidationError

from backroom.records import AlertFeedback
from backroom.settings import Settings
from dashboard.live import LiveView, parse_ts

log = logging.getLogger("dashboard.feedback")
Publish = Callable[[str, str, bytes], Awaitable[None]]
TOPIC = "alerts.feedback"


class FeedbackIn(BaseModel):
    undo: bool = False
    note: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=64)


def kafka_publisher(settings: Settings) -> Publish:
    """A producer started on first use (the dashboard otherwise only consumes)."""
    from producers.kafka import make_producer

    state: dict[str, Any] = {}
    lock = asyncio.Lock()

    async def publish(topic: str, key: str, value: bytes) -> None:
        async with lock:
            if "producer" not in state:
                producer = make_producer(settings)
                await producer.start()
                state["producer"] = producer
        await state["producer"].send_and_wait(settings.topic(topic), value=value, key=key.encode())

    return publish


def feedback_router(settings: Settings, view: LiveView, *, kafka: bool = True,
                    publish: Publish | None = None) -> APIRouter:
    """`kafka=False` (tests, the benchmark): the feedback is kept in `router.recorded` only."""
    router = APIRouter(tags=["feedback"])
    recorded: list[dict[str, Any]] = []
    router.recorded = recorded  # type: ignore[attr-defined]
    if publish is None and kafka:
        publish = kafka_publisher(settings)

    @router.post("/api/alerts/{alert_id}/false-alarm", summary="Tell Backroom an alert was wrong")
    async def false_alarm(alert_id: str, body: FeedbackIn | None = Body(default=None)) -> dict[str, Any]:
        body = body or FeedbackIn()
        alert = view.get_alert(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert with id {alert_id!r}")
        now = view.now if view.now is not None else parse_ts(alert.get("ts"))
        try:
            fb = AlertFeedback.model_validate({
                "event_id": f"fb-{uuid.uuid4().hex}", "ts": datetime.fromtimestamp(now or 0.0, UTC),
                "alert_id": alert_id, "store_id": alert.get("store_id"), "sku": alert.get("sku"),
                "alert_type": alert.get("type"), "verdict": "undo" if body.undo else "false_alarm",
                "source": "dashboard", "by": body.by, "note": body.note,
            })
        except ValidationError as exc:
            raise HTTPException(422, f"this alert cannot take feedback: {exc.errors()[0]['msg']}") from None
        key = f"{fb.store_id}:{fb.sku}"
        if publish is not None:
            try:
                await publish(TOPIC, key, fb.to_json())
            except Exception as exc:  # the broker did not take it: say so, mark nothing
                log.warning("feedback on %s not recorded: %s", alert_id, exc)
                raise HTTPException(503, "feedback not recorded: the broker is unavailable",
                                    headers={"Retry-After": "2"}) from None
        recorded.append(fb.to_dict())
        log.info("feedback %s on alert %s (%s %s)", fb.verdict, alert_id, key, fb.alert_type)
        return view.mark_feedback(alert_id, not body.undo)

    return router
