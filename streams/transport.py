"""Faust's Kafka consumer with a cheaper hand-off of each fetched message to the agents.

    app = BackroomApp(...)        # streams/app.py builds the worker with it; nothing else changes

Faust hands every fetched message to its streams with `Service.wait_first(callback(message),
suspend_flow.wait())`: four asyncio tasks and an `asyncio.wait` per message, so that a
rebalance (which sets `suspend_flow`) can abandon a delivery stuck on a full stream buffer.
On this 2-core machine that is ~15 % of a no-op agent's time (py-spy, `streams/noop.py`).

Almost every delivery finishes without waiting (the stream buffer has room, flow control is
open), so here the delivery coroutine is first stepped by hand: when it completes on that step,
no task was needed. Only when it suspends is the rest of it wrapped in a task and raced against
`suspend_flow` exactly as Faust does, so rebalances behave as before. Everything else in the
fetch loop (read offsets, gap tracking for acks, commit-every) follows Faust's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Run a coroutine that has already been stepped once (and yielded `yielded`) to its end,
    the way an asyncio Task would: wait for what it waits on, then resume it."""
    gen = cast(Generator[Any, Any, Any], coro)
    try:
        while True:
            try:
                if yielded is None:  # a bare yield (asyncio.sleep(0))
                    await asyncio.sleep(0)
                else:
                    # What a Task does with a future its coroutine yields: take the "blocking"
                    # mark off (awaiting a future that still carries it is an error), then wait.
                    yielded._asyncio_future_blocking = False
                    await yielded
            except asyncio.CancelledError:
                yielded = gen.throw(asyncio.CancelledError())
                continue
            except BaseException:  # the coroutine's own await raises it again
                pass
            yielded = gen.send(None)
    except StopIteration as stop:
        return stop.value


class Consumer(faust_aiokafka.Consumer):
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)  # getmany can return at once, again and again
                if self.should_stop:
                    continue
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > 100:  # let health checks and timers in during big fetches
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    read = get_read_offset(tp)
                    if read is not None and offset < read:
                        continue  # already delivered (Faust drops these too)
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, read + 1, offset)  # e.g. compacted or aborted
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    delivery = cast(Coroutine[Any, Any, Any], callback(message))
                    if suspended():
                        await self.wait_first(delivery, self.suspend_flow.wait())
                    else:
                        try:
                            step = delivery.send(None)
                        except StopIteration:
                            pass  # delivered without waiting: the common case
                        else:
                            rest = asyncio.ensure_future(_finish(delivery, step))
                            await self.wait_first(rest, self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class BackroomApp(faust.App):
    """A Faust app whose consumer uses the cheaper per-message hand-off above."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
