"""`backroom simulate`: the store simulator producing to Kafka on an accelerated clock.

    backroom simulate --stores 3 --skus 20 --speed 600 --truth truth.jsonl

Event time comes from the simulation; the wall clock only paces the sending (`--speed` event
seconds per wall second, 0 = as fast as possible), so the same seed yields the same events.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console

from backroom.demand.closed_loop import AlertDrivenStaff
from backroom.settings import Settings
from backroom.simulation import SimConfig, StoreSimulator
from producers.kafka import make_consumer, make_producer, send_record

console = Console(stderr=True)


async def run_simulator(
    settings: Settings, *, stores: int, skus: int, days: float, speed: float, seed: int,
    start: str, truth_path: Path | None = None, staff: str = "scheduled",
    stop: asyncio.Event | None = None, camera_every_min: float = 0.0, cameras_per_store: int = 1,
) -> int:
    """Produce the simulation; returns the number of events sent.

    `staff="alert-driven"` closes the loop through Kafka: simulated staff read the `alerts`
    topic and restock a shelf a reaction delay after its RESTOCK_SHELF opens, and REORDER alerts
    place orders that arrive after the lead time (the store's own daily ordering is off)."""
    if staff not in ("scheduled", "alert-driven"):
        raise SystemExit(f"--staff {staff}: choose scheduled or alert-driven")
    config = SimConfig(stores=stores, skus=skus, days=days, seed=seed,
                       start=datetime.fromisoformat(start))
    policy = AlertDrivenStaff(reaction_minutes=45.0) if staff == "alert-driven" else None
    sim = StoreSimulator(config, staff=policy)
    producer = make_producer(settings)
    await producer.start()
    listener = None
    if policy is not None:
        sim.auto_orders = False
        listener = asyncio.create_task(_follow_alerts(settings, sim, policy))
    rig = None
    next_capture = config.start
    if camera_every_min > 0:
        from backroom.camera_sim import CameraRig

        rig = CameraRig(sim.items, settings.frames_dir, seed=seed, cameras_per_store=cameras_per_store)
        for pg in rig.planograms():
            await send_record(producer, settings, "catalog.planograms", f"{pg.store_id}:{pg.camera_id}", pg)
    truth = truth_path.open("w") if truth_path else None
    sent = 0
    catalog_sent = False
    wall0 = time.monotonic()
    try:
        for ev in sim.events():
            if stop is not None and stop.is_set():
                break
            if speed > 0:
                due = wall0 + (ev.ts - config.start).total_seconds() / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if rig is not None and ev.ts >= next_capture:
                # Rendering is CPU work: keep it off the loop so sends keep flowing.
                frames = await asyncio.to_thread(rig.capture, next_capture)
                for fr in frames:
                    await send_record(producer, settings, "camera.frames", f"{fr.store_id}:{fr.camera_id}", fr)
                next_capture += timedelta(minutes=camera_every_min)
            if ev.topic != "catalog.skus" and speed > 0 and not catalog_sent:
                catalog_sent = True
                # Give the worker's catalog table a moment, so the first states carry the
                # catalog's values instead of the defaults (they would self-correct anyway).
                await producer.flush()
                await asyncio.sleep(2.0)
                wall0 += 2.0
            await send_record(producer, settings, ev.topic, ev.key, ev.record)
            sent += 1
            if truth is not None:
                for row in sim.truth:
                    truth.write(json.dumps(row.to_dict()) + "\n")
            sim.truth.clear()
            if sent % 5000 == 0:
                console.log(f"simulator: {sent} events, event time {ev.ts.isoformat()}")
        await producer.flush()
    finally:
        if listener is not None:
            listener.cancel()
        await producer.stop()
        if truth is not None:
            truth.close()
    console.log(f"simulator: done, {sent} events, {sim.lost_sales} sales lost to empty shelves")
    return sent


async def _follow_alerts(settings: Settings, sim: StoreSimulator, staff: AlertDrivenStaff) -> None:
    """Staff and buyer acting on alerts as they arrive (alerts from before this run are old)."""
    consumer = make_consumer(settings, "alerts", group_id=None, auto_offset_reset="latest")
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    alert = orjson.loads(rec.value)
                    key = f"{alert['store_id']}:{alert['sku']}"
                    if key not in sim.by_key:
                        continue
                    staff.on_alert(alert)
                    if alert["type"] == "REORDER" and alert["status"] == "open":
                        qty = int(alert.get("evidence", {}).get("order_qty", 0))
                        if qty > 0:
                            sim.place_order(key, qty, datetime.fromisoformat(alert["ts"]))
    finally:
        await consumer.stop()
