"""`streams.batching.cadenced_batches` through a real Faust agent's `test_context()`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from streams.batching import cadenced_batches


def make_agent(window_s: float, max_size: int, handle_s: float = 0.0,
               min_wait_s: float = 0.01) -> tuple[Any, list[list[Any]], list[float]]:
    app = faust.App(f"batching-{time.monotonic_ns()}", broker="kafka://127.0.0.1:1", store="memory://")
    batches: list[list[Any]] = []
    closed: list[float] = []
    topic = app.topic("batching-in", value_serializer="raw")

    @app.agent(topic)
    async def agent(stream: faust.StreamT) -> None:
        async for events in cadenced_batches(stream, max_size, window_s, min_wait_s):
            closed.append(time.monotonic())
            batches.append([e.value for e in events])
            if handle_s:
                await asyncio.sleep(handle_s)  # a slow handler: events keep arriving meanwhile
            for event in events:
                await stream.ack(event)

    return agent, batches, closed


async def test_every_event_lands_in_exactly_one_batch_in_order() -> None:
    agent, batches, _ = make_agent(window_s=0.02, max_size=7)
    async with agent.test_context() as ctx:
        for i in range(50):
            await ctx.put(str(i).encode())
            if i % 10 == 0:
                await asyncio.sleep(0.03)
        await asyncio.sleep(0.1)
    flat = [v for b in batches for v in b]
    assert flat == [str(i).encode() for i in range(50)]
    assert max(len(b) for b in batches) <= 7


async def test_events_queued_while_a_batch_is_handled_do_not_wait_a_whole_window() -> None:
    # With a fixed wait after each batch (Faust's noack_take), the batch after a 0.15 s handler
    # closes 0.3 s after the one before it; on a cadence it closes as soon as handling ends.
    agent, batches, closed = make_agent(window_s=0.15, max_size=1000, handle_s=0.15)
    async with agent.test_context() as ctx:
        await ctx.put(b"first")
        await asyncio.sleep(0.2)  # the first batch is closed and being handled
        await ctx.put(b"second")
        await asyncio.sleep(0.5)
    assert [b"first"] in batches and [b"second"] in batches
    assert closed[1] - closed[0] < 0.25

