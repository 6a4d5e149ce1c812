"""`backroom alerts --follow`: print alerts as they arrive (rich lines, or JSON with --json)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from rich.console import Console

from backroom.settings import Settings
from producers.kafka import make_consumer

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


async def tail_alerts(settings: Settings, follow: bool, as_json: bool) -> int:
    console = Console()
    consumer = make_consumer(settings, "alerts", group_id=f"backroom-tail-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    shown = 0
    try:
        idle = 0
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                idle += 1
                if not follow and idle >= 4:
                    break
                continue
            idle = 0
            for records in batch.values():
                for rec in records:
                    shown += 1
                    if as_json:
                        print(rec.value.decode(), flush=True)
                        continue
                    a = orjson.loads(rec.value)
                    style = SEVERITY_STYLE.get(a.get("severity"), "")
                    console.print(
                        f"{a['ts']} [{style}]{a['severity']:>8}[/] {a['status']:<8} {a['type']:<14} "
                        f"{a['store_id']}:{a['sku']}  {a['message']}  → {a['action']}"
                    )
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
    return shown
