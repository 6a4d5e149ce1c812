"""Fan-out of live-view deltas to websocket clients, coalesced on a fixed flush interval.

    pytest tests/unit/test_dashboard_live.py -k hub

`Hub.flush()` drains the `LiveView` once, serialises the delta once and queues the same string
for every client; each websocket has its own sender task draining its queue. A client that
falls behind (its queue is full) loses its queued deltas and gets a fresh snapshot instead,
since deltas are latest-value-per-key and a gap would otherwise leave the page wrong; those
lost deltas are counted in `dropped`. No FastAPI here: the server wires it to websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dashboard.live import LiveView, to_wire

CLOSE = ""  # sentinel queued to a client when the hub shuts down


def dumps(msg: dict[str, Any]) -> str:
    # One serialisation per flush, shared by every client; str because browsers get text frames.
    return orjson.dumps(to_wire(msg), option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[str]
    resyncs: int = 0
    dropped: int = 0


@dataclass
class HubStats:
    flushes: int = 0
    deltas_sent: int = 0
    dropped: int = 0
    resyncs: int = 0
    connects: int = 0
    last_flush_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Hub:
    def __init__(
        self,
        view: LiveView,
        flush_s: float = 0.1,
        max_queue: int = 8,
        on_flush: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.view = view
        self.flush_s = flush_s
        self.max_queue = max_queue
        self.clients: set[Client] = set()
        self.stats = HubStats()
        self.on_flush = on_flush
        self._task: asyncio.Task[None] | None = None

    def connect(self) -> Client:
        """Register a client and queue its snapshot in the same step, so no delta is missed."""
        client = Client(asyncio.Queue(maxsize=self.max_queue))
        client.queue.put_nowait(dumps(self.view.snapshot()))
        self.clients.add(client)
        self.stats.connects += 1
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def flush(self) -> int:
        """Drain the view and queue the delta to every client; returns the clients reached."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        delta = self.view.drain()
        if delta is None:
            return 0
        if self.on_flush is not None:
            self.on_flush(delta)
        text = dumps(delta)
        snapshot: str | None = None
        reached = 0
        for client in self.clients:
            try:
                client.queue.put_nowait(text)
                reached += 1
            except asyncio.QueueFull:
                # Slow client: everything queued is superseded by one snapshot.
                lost = client.queue.qsize() + 1
                while not client.queue.empty():
                    client.queue.get_nowait()
                if snapshot is None:
                    snapshot = dumps(self.view.snapshot())
                client.queue.put_nowait(snapshot)
                client.dropped += lost
                client.resyncs += 1
                self.stats.dropped += lost
                self.stats.resyncs += 1
        self.stats.flushes += 1
        self.stats.deltas_sent += reached
        self.stats.last_flush_ms = (loop.time() - start) * 1000
        return reached

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                self.flush()
            except Exception as exc:  # a bad record must not stop the page updating
                self.stats.extra["last_error"] = repr(exc)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="dashboard-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for client in list(self.clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(CLOSE)
