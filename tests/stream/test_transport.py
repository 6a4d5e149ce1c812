"""The hand-stepped delivery of `streams.transport` behaves like an asyncio task.

    pytest tests/stream/test_transport.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.transport import _finish


def stepped(coro: Any) -> Any:
    """What the consumer does: one step by hand, then a task for the rest (if any)."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(stop.value)
        return fut
    return asyncio.ensure_future(_finish(coro, first))


async def test_a_delivery_that_never_waits_completes_on_the_first_step() -> None:
    log: list[str] = []

    async def deliver() -> str:
        log.append("in")
        return "done"

    coro = deliver()
    with pytest.raises(StopIteration):
        coro.send(None)
    assert log == ["in"]


async def test_waiting_on_futures_and_sleep_zero_resumes_with_their_results() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    async def deliver() -> int:
        await asyncio.sleep(0)
        got = await gate
        await asyncio.sleep(0.01)
        return got + 1

    task = stepped(deliver())
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(41)
    assert await task == 42


async def test_an_exception_of_an_awaited_future_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def deliver() -> str:
        try:
            await gate
        except KeyError as exc:
            seen.append(str(exc))
            return "handled"
        return "not reached"

    task = stepped(deliver())
    gate.set_exception(KeyError("full"))
    assert await task == "handled" and seen == ["'full'"]


async def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    cleanup: list[str] = []

    async def deliver() -> None:
        try:
            await gate
        finally:
            cleanup.append("finally ran")

    task = stepped(deliver())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["finally ran"] and gate.cancelled()
