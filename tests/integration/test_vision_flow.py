"""Camera frame → shelf observation → alert, on the real broker with the shipped detector.

    pytest tests/integration/test_vision_flow.py

Records say 10 units of P1 are on the shelf; two frames in a row show P1's facings empty: the
worker emits observations with no visible facings and opens PHANTOM_STOCK with the frame as
evidence. Bad frame references in between are dead-lettered and change nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backroom.records import CameraFrame, Planogram, PlanogramSlot
from backroom.settings import Settings
from backroom.vision.detector import DEFAULT_MODEL
from streams.topics import ensure_topics
from tests.factories import T0, catalog_entry, key, scan
from tests.helpers import consume_until, produce

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"no detector weights at {DEFAULT_MODEL}"),
]


def planogram() -> Planogram:
    from backroom.vision.render import random_planogram

    layout = random_planogram("V1", "cam1", seed=21, rows=3)
    slots = [PlanogramSlot(sku=f"P{i + 1}", box=s.box, facings=s.facings) for i, s in enumerate(layout.slots)]
    return Planogram(store_id="V1", camera_id="cam1", slots=slots)


def test_gap_frames_raise_phantom_stock_with_the_frame_as_evidence(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    from datetime import timedelta

    from backroom.vision.frames import save_frame
    from backroom.vision.render import render_frame

    pg = planogram()
    target = pg.slots[0]
    asyncio.run(ensure_topics(kafka_settings))
    worker = worker_factory(kafka_settings)
    setup: list[tuple[str, str | None, Any]] = [
        ("catalog.skus", "*:P1", catalog_entry("P1", shelf_capacity=12, min_shelf_qty=3)),
        ("catalog.planograms", "V1:cam1", pg),
    ]
    for ev in (scan("receive", 20, "V1", "P1"), scan("move_to_shelf", 10, "V1", "P1", minutes=1)):
        setup.append(("backroom.scans", key(ev), ev))
    asyncio.run(produce(kafka_settings, setup))

    visible = {s.sku: s.facings for s in pg.slots} | {target.sku: 0}
    frames: list[tuple[str, str | None, Any]] = []
    for i in range(2):
        image, _ = render_frame(pg, visible, seed=100 + i)
        uri = save_frame(image, kafka_settings.frames_dir, "V1", "cam1", f"f{i}")
        ts = T0 + timedelta(minutes=10 + i * 10)
        frames.append(("camera.frames", "V1:cam1", CameraFrame(
            event_id=f"frame-{i}", ts=ts, store_id="V1", camera_id="cam1", frame_uri=uri)))
        bad = {"event_id": f"bad-{i}", "ts": ts.isoformat(), "store_id": "V1", "camera_id": "cam1",
               "frame_uri": "../../etc/passwd" if i == 0 else "http://example.com/x.jpg"}
        frames.append(("camera.frames", "V1:cam1", bad))
    asyncio.run(produce(kafka_settings, frames))

    obs = asyncio.run(consume_until(
        kafka_settings, "shelf.observations",
        lambda o: sum(1 for x in o if x["sku"] == "P1") >= 2, timeout_s=90,
    ))
    mine = [o for o in obs if o["sku"] == "P1"]
    assert len(mine) >= 2 and all(o["facings_visible"] == 0 for o in mine), mine
    assert {o["frame_event_id"] for o in mine} == {"frame-0", "frame-1"}

    alerts = asyncio.run(consume_until(
        kafka_settings, "alerts",
        lambda al: any(a["type"] == "PHANTOM_STOCK" and a["sku"] == "P1" for a in al), timeout_s=60,
    ))
    phantom = next(a for a in alerts if a["type"] == "PHANTOM_STOCK")
    assert phantom["status"] == "open" and phantom["evidence"]["shelf_qty"] == 10
    assert phantom["evidence"]["observation"]["frame_uri"].endswith("f1.jpg")
    assert phantom["evidence"]["observation"]["boxes"], "the gap boxes are the evidence"

    dead = asyncio.run(consume_until(kafka_settings, "dead-letter", lambda d: len(d) >= 2, timeout_s=30))
    reasons = sorted(d["error"] for d in dead)
    assert len(dead) == 2, reasons
    assert "traversal" in reasons[0] and "scheme" in reasons[1], reasons
    assert worker.alive, worker.log()
