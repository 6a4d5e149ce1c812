"""The worker's agents through `agent.test_context()` (memory store, no broker).

Table changelog writes and topic sends are captured instead of produced, so these tests check
what the agents compute and send, with the same code path the worker runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import MagicMock, patch

import faust
import orjson
import pytest

from backroom.inventory import SkuState
from backroom.settings import Settings
from backroom.state_codec import decode_state, encode_state, value_version
from streams.app import create_app
from tests.factories import catalog_entry, key, sale, scan


@dataclass
class Sent:
    by_topic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __call__(self, topic: str) -> list[dict[str, Any]]:
        return self.by_topic.get(topic, [])


def stored(value: bytes | None) -> Any:
    """A produced or stored value: JSON, or an inventory state (binary, as a dict)."""
    if value is not None and value_version(value) is not None:
        return decode_state(value).to_dict()
    return orjson.loads(value or b"null")


@pytest.fixture
def app_and_sent(settings_factory: Any) -> Iterator[tuple[faust.App, Sent]]:
    settings: Settings = settings_factory(kafka_bootstrap="127.0.0.1:1", store="memory://",
                                          batch_within_s=0.01)
    app = create_app(settings)
    app.finalize()
    sent = Sent()

    async def fake_send(self: faust.TopicT, key: bytes | None = None, value: bytes | None = None,
                        **_: Any) -> None:
        sent.by_topic.setdefault(self.get_topic_name(), []).append(orjson.loads(value or b"null"))

    async def fake_produce(self: Any, topic: str, key: bytes | None, value: bytes | None,
                           *_: Any, **__: Any) -> None:
        sent.by_topic.setdefault(topic, []).append(stored(value))

    changelog = MagicMock()
    changelog.return_value.message.partition = 0
    # Records go through Topic.send (dead letters) or straight to the producer (streams.checkpoint.Checkpoint.produce).
    with patch.object(faust.Topic, "send", fake_send), \
         patch.object(type(app.producer), "send", fake_produce), \
         patch.object(faust.Table, "send_changelog", changelog):
        yield app, sent


async def put_all(app: faust.App, agent_name: str, events: list[dict[str, Any]]) -> None:
    agent = app.backroom_agents[agent_name]  # type: ignore[attr-defined]
    async with agent.test_context() as ctx:
        for ev in events:
            await ctx.put(orjson.dumps(ev), key=key(ev).encode())
        await asyncio.sleep(0.1)  # let the last take_events batch close


async def test_scans_and_sales_update_the_table_and_publish_state(app_and_sent: Any) -> None:
    app, sent = app_and_sent
    await put_all(app, "scans", [scan("receive", 24), scan("move_to_shelf", 20, minutes=1)])
    await put_all(app, "sales", [sale(qty=2, minutes=2), sale(qty=1, minutes=3)])
    state = stored(app.backroom_tables["inventory"]["S1:A"])
    assert (state["shelf_qty"], state["backroom_qty"]) == (17, 4)
    published = sent("inventory.state")
    assert published[-1]["shelf_qty"] == 17 and published[-1]["catalog_missing"] is True


async def test_repeated_event_id_changes_nothing(app_and_sent: Any) -> None:
    app, _sent = app_and_sent
    receive = scan("receive", 10)
    await put_all(app, "scans", [receive, receive, receive])
    assert stored(app.backroom_tables["inventory"]["S1:A"])["backroom_qty"] == 10


async def test_bad_events_go_to_dead_letter_and_the_agent_keeps_going(app_and_sent: Any) -> None:
    app, sent = app_and_sent
    agent = app.backroom_agents["sales"]
    async with agent.test_context() as ctx:
        await ctx.put(b"{oops", key=b"S1:A")
        await ctx.put(orjson.dumps(sale(qty=0)), key=b"S1:A")
        await ctx.put(orjson.dumps(sale(sku="B")), key=b"S1:A")  # wrong key
        await ctx.put(orjson.dumps(sale(qty=1)), key=b"S1:A")
        await asyncio.sleep(0.1)
    dead = sent("dead-letter")
    assert len(dead) == 3
    assert "invalid JSON" in dead[0]["error"] and "qty" in dead[1]["error"] and "key" in dead[2]["error"]
    assert dead[0]["raw"] == "{oops" and dead[0]["source_topic"] == "pos.sales"
    assert stored(app.backroom_tables["inventory"]["S1:A"])["version"] == 1


async def test_catalog_feeds_the_state_and_alerts_follow_state(app_and_sent: Any) -> None:
    app, sent = app_and_sent
    catalog = app.backroom_agents["catalog"]
    async with catalog.test_context() as ctx:
        await ctx.put(orjson.dumps(catalog_entry("A", shelf_capacity=30, min_shelf_qty=8)), key=b"*:A")
        await ctx.put(b'{"sku": "A"}', key=b"*:A")  # invalid: dead-lettered, entry kept
        await asyncio.sleep(0.05)
    assert app.backroom_tables["catalog"]["*:A"]["shelf_capacity"] == 30
    scans = [scan("receive", 40), scan("move_to_shelf", 7, minutes=1)]
    await put_all(app, "scans", scans)
    state = sent("inventory.state")[-1]
    assert state["shelf_capacity"] == 30 and "catalog_missing" not in state
    # The scans agent evaluates the alert rules on the states it computes, and books them.
    alerts = sent("alerts")
    assert [(a["type"], a["status"]) for a in alerts] == [("RESTOCK_SHELF", "open")]
    assert "move 23 units" in alerts[0]["action"]
    book = app.backroom_tables["alert_books"]["S1:A"]
    assert book["last_version"] == state["version"]
    # The same scans again (same event_ids) change no state and raise nothing new.
    await put_all(app, "scans", scans)
    assert len(sent("alerts")) == 1
    assert stored(app.backroom_tables["inventory"]["S1:A"])["version"] == state["version"]


def test_changelog_replay_never_replaces_a_newer_inventory_value(app_and_sent: Any) -> None:
    # Inventory values are binary states (backroom.state_codec); replay after a rebalance
    # compares their versions.
    app, _ = app_and_sent
    table = app.backroom_tables["inventory"]  # type: ignore[attr-defined]

    def value(sku: str, version: int, shelf: int) -> bytes:
        return encode_state(SkuState("S1", sku, shelf_qty=shelf, version=version))

    table.data["S1:A"] = value("A", 5, 7)

    def record(key: str, raw: bytes) -> Any:
        # As recovery hands them over: the key deserialized, the value raw bytes.
        return MagicMock(key=key, value=raw, message=MagicMock(key=key.encode(), value=raw, partition=0))

    table.apply_changelog_batch([record("S1:A", value("A", 3, 1)), record("S1:B", value("B", 1, 2))])
    assert (stored(table.data["S1:A"])["version"], stored(table.data["S1:A"])["shelf_qty"]) == (5, 7)
    assert (stored(table.data["S1:B"])["version"], stored(table.data["S1:B"])["shelf_qty"]) == (1, 2)
    table.apply_changelog_batch([record("S1:A", value("A", 6, 0))])
    assert stored(table.data["S1:A"])["version"] == 6
