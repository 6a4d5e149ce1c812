"""The worker's Prometheus series as the agents update them, through `agent.test_context()`.

    .venv/bin/pytest -q tests/stream/test_metrics_stream.py
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import MagicMock, patch

import faust
import orjson

from streams.app import create_app
from tests.factories import key, sale, scan


def value(app: faust.App, name: str, **labels: str) -> float:
    got = app.backroom_metrics.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return float(got or 0.0)


async def test_agents_count_events_dead_letters_and_duplicates(settings_factory: Any) -> None:
    settings = settings_factory(kafka_bootstrap="127.0.0.1:1", store="memory://", batch_within_s=0.01)
    app = create_app(settings)
    app.finalize()

    async def fake_send(self: faust.TopicT, *args: Any, **kwargs: Any) -> None:
        return None

    changelog = MagicMock()
    changelog.return_value.message.partition = 0
    with patch.object(faust.Topic, "send", fake_send), \
         patch.object(faust.Table, "send_changelog", changelog):
        receive = scan("receive", 10)
        async with app.backroom_agents["scans"].test_context() as ctx:  # type: ignore[attr-defined]
            for ev in (receive, receive):
                await ctx.put(orjson.dumps(ev), key=key(ev).encode())
            await asyncio.sleep(0.1)
        async with app.backroom_agents["sales"].test_context() as ctx:  # type: ignore[attr-defined]
            await ctx.put(orjson.dumps(sale(qty=1, minutes=1)), key=b"S1:A")
            await ctx.put(b"{oops", key=b"S1:A")
            await asyncio.sleep(0.1)

    assert value(app, "backroom_events_processed_total", topic="backroom.scans", agent="inventory") == 2
    assert value(app, "backroom_duplicates_total", topic="backroom.scans") == 1
    assert value(app, "backroom_events_processed_total", topic="pos.sales", agent="inventory") == 2
    assert value(app, "backroom_dead_lettered_total", topic="pos.sales") == 1
    assert value(app, "backroom_batch_size_count", agent="inventory") >= 2
