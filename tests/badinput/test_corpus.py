"""Bad input on the real broker: every malformed event lands in dead-letter with its reason,
every valid event around them is processed, and the worker keeps running.

    pytest tests/badinput
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.badinput.corpus import CORPUS
from tests.factories import key, sale, scan
from tests.helpers import consume_until, produce

pytestmark = pytest.mark.integration


def test_corpus_is_big_enough_and_names_are_unique() -> None:
    assert len(CORPUS) >= 40
    assert len({c[0] for c in CORPUS}) == len(CORPUS)


def test_every_bad_event_is_dead_lettered_and_valid_ones_survive(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    worker = worker_factory(kafka_settings)
    messages: list[tuple[str, str | None, Any]] = []
    receive = scan("receive", 100, "S9", "X", minutes=0)
    messages.append(("backroom.scans", key(receive), receive))
    valid_sales = 0
    for _, topic, k, raw, _ in CORPUS:
        messages.append((topic, k, raw))
        ev = scan("move_to_shelf", 1, "S9", "X", minutes=1) if topic == "backroom.scans" else sale("S9", "X", minutes=2)
        valid_sales += ev.get("kind") is None
        messages.append(("backroom.scans" if "kind" in ev else "pos.sales", key(ev), ev))
    moves = len(messages) // 2 - valid_sales

    async def send() -> None:
        # Per-topic order matters for the dead-letter match below: send one by one.
        await produce(kafka_settings, messages)

    asyncio.run(send())
    expected_bad = len(CORPUS)
    dead = asyncio.run(consume_until(kafka_settings, "dead-letter", lambda d: len(d) >= expected_bad, 90))
    assert len(dead) == expected_bad, [d["error"] for d in dead]

    # Match each case to its dead letter by topic and the exact raw bytes kept in `raw`.
    def raw_of(d: dict[str, Any]) -> bytes:
        text = d["raw"]
        return base64.b64decode(text[7:]) if text.startswith("base64:") else text.encode()

    letters = {(d["source_topic"], raw_of(d)): d for d in dead}
    for name, topic, _, raw, reason in CORPUS:
        d = letters.get((topic, raw or b""))
        assert d is not None, f"{name}: no dead letter with its raw value"
        assert reason in d["error"], f"{name}: {d['error']}"

    def done(states: list[dict[str, Any]]) -> bool:
        return any(s["sku"] == "X" and s["version"] == 1 + moves + valid_sales for s in states)

    states = asyncio.run(consume_until(kafka_settings, "inventory.state", done, 60))
    final = max((s for s in states if s["sku"] == "X"), key=lambda s: s["version"])
    assert final["version"] == 1 + moves + valid_sales
    assert final["shelf_qty"] == max(0, moves - valid_sales) and final["backroom_qty"] == 100 - moves
    assert worker.alive, worker.log()
