"""The worker's feedback agent through `agent.test_context()` (memory store, no broker).

    pytest tests/stream/test_feedback_agent.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.factories import ts
from tests.stream.test_agents import app_and_sent  # noqa: F401 - the fixture


def feedback(n: int, verdict: str = "false_alarm", alert_type: str = "STOCKOUT_RISK") -> dict[str, Any]:
    return {"event_id": f"fb-{n}", "ts": ts(n), "alert_id": "al-1", "store_id": "S1", "sku": "A",
            "alert_type": alert_type, "verdict": verdict, "source": "dashboard"}


async def test_feedback_tunes_the_book_bounded_idempotent_and_reversible(app_and_sent: Any) -> None:  # noqa: F811
    app, sent = app_and_sent
    agent = app.backroom_agents["feedback"]
    events = [feedback(1), feedback(1), feedback(2), feedback(3), feedback(4), feedback(5, "undo")]
    async with agent.test_context() as ctx:
        for ev in events:
            await ctx.put(orjson.dumps(ev), key=b"S1:A")
        await ctx.put(b"{oops", key=b"S1:A")
        await asyncio.sleep(0.05)
    book = app.backroom_tables["alert_books"]["S1:A"]
    # fb-1 twice counts once; 1, 2, 3 reach the bound of 3, 4 is over it, the undo takes one back.
    assert book["tuning"] == {"STOCKOUT_RISK": 2}
    assert book["feedback_ids"] == ["fb-1", "fb-2", "fb-3", "fb-4", "fb-5"]
    assert len(sent("dead-letter")) == 1 and "invalid JSON" in sent("dead-letter")[0]["error"]
