"""False-alarm feedback: the tuner's bounds, log and undo; the dashboard route; the rules it tunes.

    pytest tests/unit/test_feedback.py
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from backroom.alerts import AlertBook, AlertEngine
from backroom.feedback import MAX_STEPS, FeedbackTuner, apply_to_book, lookahead
from backroom.records import AlertFeedback, InventoryState
from backroom.settings import Settings
from dashboard.server import create_app

T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
_n = iter(range(10_000))


def fb(verdict: str = "false_alarm", alert_type: str = "CHECK_SHELF", sku: str = "A") -> AlertFeedback:
    return AlertFeedback.model_validate({
        "event_id": f"fb-{next(_n)}", "ts": T, "alert_id": "al-1", "store_id": "S1", "sku": sku,
        "alert_type": alert_type, "verdict": verdict, "source": "api",
    })


def test_each_false_alarm_is_one_step_bounded_logged_and_undone(caplog: pytest.LogCaptureFixture) -> None:
    tuner = FeedbackTuner()
    caplog.set_level(logging.INFO, logger="backroom.feedback")
    changes = [tuner.apply(fb()) for _ in range(MAX_STEPS + 2)]
    assert [c["steps_after"] for c in changes if c] == [1, 2, 3]
    assert changes[-2:] == [None, None]  # at the bound: no change, but logged
    assert tuner.steps("S1:A", "CHECK_SHELF") == MAX_STEPS and tuner.steps("S1:B", "CHECK_SHELF") == 0
    assert tuner.silent_threshold(1e-4, "S1:A") == pytest.approx(1e-7)
    assert sum("already at 3 steps" in r.message for r in caplog.records) == 2
    for _ in range(MAX_STEPS + 1):
        tuner.apply(fb("undo"))
    assert tuner.steps("S1:A", "CHECK_SHELF") == 0 and tuner.silent_threshold(1e-4, "S1:A") == 1e-4
    assert [c["steps_after"] for c in tuner.history] == [1, 2, 3, 2, 1, 0]


def test_repeats_and_facts_change_nothing() -> None:
    tuner = FeedbackTuner()
    event = fb()
    assert tuner.apply(event) is not None and tuner.apply(event) is None  # same event_id
    assert tuner.apply(fb(alert_type="OUT_OF_STOCK")) is None  # a fact, not a guess
    assert tuner.type_steps("S1:A") == {"CHECK_SHELF": 1}


def _state(**kw: Any) -> InventoryState:
    return InventoryState.model_validate({
        "ts": T, "store_id": "S1", "sku": "A", "shelf_qty": 10, "backroom_qty": 20, "shelf_capacity": 30,
        "min_shelf_qty": 4, "demand_per_hour": 1.0, "hours_to_shelf_out": 10.0, "hours_to_stockout": 30.0,
        "version": 1, **kw,
    })


def test_tuned_books_look_less_far_ahead() -> None:
    engine = AlertEngine(horizon_hours=48.0)
    # Stock lasts 30 h: within 48 x 0.75 = 36 h it is a risk; after two false alarms the
    # horizon is 48 x 0.75^2 = 27 h (x 0.75 margin) and it is not.
    plain = engine.on_state(AlertBook(), _state())
    tuned = engine.on_state(AlertBook(tuning={"STOCKOUT_RISK": 2}), _state())
    assert "STOCKOUT_RISK" in {a.type for a in plain} and "STOCKOUT_RISK" not in {a.type for a in tuned}
    assert lookahead(0) == 1.0 and lookahead(2) == pytest.approx(0.5625)
    # The book keeps its tuning through the table (and says it changed).
    book = AlertBook(tuning={"STOCKOUT_RISK": 2})
    assert AlertBook.from_dict(book.to_dict()).tuning == {"STOCKOUT_RISK": 2}
    assert book.changed_since(AlertBook().to_dict()) and "tuning" not in AlertBook().to_dict()


BASE = "http://127.0.0.1:8000"


async def test_dashboard_false_alarm_route(settings_factory: Callable[..., Settings]) -> None:
    app = create_app(settings_factory(), kafka=False)
    view = app.state.view
    view.apply_alert({"alert_id": "al-1", "ts": "2026-11-27T09:00:00Z", "store_id": "S1", "sku": "A",
                      "type": "CHECK_SHELF", "status": "open", "severity": "medium", "message": "m",
                      "action": "check", "evidence": {}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        r = await client.post("/api/alerts/al-1/false-alarm")
        assert r.status_code == 200 and r.json()["false_alarm"] is True
        assert view.get_alert("al-1")["false_alarm"] is True
        r = await client.post("/api/alerts/al-1/false-alarm", json={"undo": True, "note": "it was empty after all"})
        assert r.status_code == 200 and r.json()["false_alarm"] is False
        assert (await client.post("/api/alerts/nope/false-alarm")).status_code == 404
        assert (await client.post("/api/alerts/al-1/false-alarm", json={"note": "x" * 600})).status_code == 422
        # Cross-origin posts are refused like ack and resolve (the dashboard's middleware).
        r = await client.post("/api/alerts/al-1/false-alarm", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


async def test_dashboard_feedback_goes_to_the_topic_or_503(settings_factory: Callable[..., Settings]) -> None:
    from fastapi import FastAPI

    from dashboard.feedback import feedback_router
    from dashboard.live import LiveView

    view = LiveView()
    view.apply_alert({"alert_id": "al-2", "ts": "2026-11-27T09:00:00Z", "store_id": "S1", "sku": "B",
                      "type": "RESTOCK_SHELF", "status": "open", "severity": "low", "message": "m",
                      "action": "move", "evidence": {}})
    sent: list[tuple[str, str, bytes]] = []
    broken = False

    async def publish(topic: str, key: str, value: bytes) -> None:
        if broken:
            raise ConnectionError("no broker")
        sent.append((topic, key, value))

    app = FastAPI()
    app.include_router(feedback_router(Settings(_env_file=None), view, publish=publish))  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await client.post("/api/alerts/al-2/false-alarm")).status_code == 200
        topic, key, value = sent[0]
        got = AlertFeedback.model_validate_json(value)
        assert (topic, key, got.alert_type, got.verdict, got.source) == (
            "alerts.feedback", "S1:B", "RESTOCK_SHELF", "false_alarm", "dashboard")
        assert got.ts == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # the page's event time
        broken = True
        view.mark_feedback("al-2", False)
        r = await client.post("/api/alerts/al-2/false-alarm")
        assert r.status_code == 503 and view.get_alert("al-2")["false_alarm"] is False


def test_a_book_takes_feedback_once_keeps_its_other_fields_and_a_bounded_id_list() -> None:
    first = fb()
    applied = apply_to_book({"open": {"X": 1}}, first, keep_ids=3)
    assert applied is not None
    book, tuner = applied
    assert book["open"] == {"X": 1} and book["tuning"] == {"CHECK_SHELF": 1}
    assert book["feedback_ids"] == [first.event_id] and tuner.steps("S1:A", "CHECK_SHELF") == 1
    assert apply_to_book(book, first) is None  # a redelivery changes nothing
    for _ in range(4):
        applied = apply_to_book(book, fb(), keep_ids=3)
        assert applied is not None
        book = applied[0]
    assert len(book["feedback_ids"]) == 3 and book["tuning"] == {"CHECK_SHELF": MAX_STEPS}
    undo = apply_to_book(book, fb("undo"))
    assert undo is not None and undo[0]["tuning"] == {"CHECK_SHELF": MAX_STEPS - 1}
