"""Simulated shelf cameras: render the simulator's true shelves into frames under the frame root.

    rig = CameraRig(sim.items, frame_root, seed=7)
    rig.planograms()                      # one Planogram per (store, camera), for catalog.planograms
    rig.capture(ts)                       # [CameraFrame] rendered from the items' true shelf qty

Each store's SKUs are spread over its cameras; a slot's facings hold the shelf capacity spread
evenly (depth = capacity / facings), so what the camera shows follows the true quantity — shrink
included, which is how the camera catches phantom stock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from backroom.records import CameraFrame, Planogram, PlanogramSlot
from backroom.simulation import SimSku


class CameraRig:
    def __init__(self, items: Sequence[SimSku], frame_root: Path, seed: int = 7,
                 cameras_per_store: int = 1, size: tuple[int, int] = (640, 480)) -> None:
        from backroom.vision.render import random_planogram

        self.root = Path(frame_root)
        self.seed = seed
        self.size = size
        self._seq = 0
        self.items = {(i.store_id, i.catalog.sku): i for i in items}
        self._planograms: list[Planogram] = []
        stores: dict[str, list[SimSku]] = {}
        for item in items:
            stores.setdefault(item.store_id, []).append(item)
        for s_idx, (store, store_items) in enumerate(sorted(stores.items())):
            per_camera = math.ceil(len(store_items) / cameras_per_store)
            for c in range(cameras_per_store):
                mine = store_items[c * per_camera : (c + 1) * per_camera]
                if not mine:
                    continue
                camera = f"cam{c + 1}"
                layout = random_planogram(store, camera, seed * 1000 + s_idx * 10 + c)
                slots = [
                    PlanogramSlot(sku=item.catalog.sku, box=slot.box, facings=slot.facings)
                    for slot, item in zip(layout.slots, mine, strict=False)
                ]
                self._planograms.append(Planogram(store_id=store, camera_id=camera, slots=slots))

    def planograms(self) -> list[Planogram]:
        return list(self._planograms)

    def capture(self, ts: datetime) -> list[CameraFrame]:
        """Render and save one frame per camera showing the true shelves at `ts`."""
        from backroom.vision import visible_facings
        from backroom.vision.frames import save_frame
        from backroom.vision.render import render_frame

        frames = []
        for pg in self._planograms:
            visible = {}
            for slot in pg.slots:
                item = self.items[(pg.store_id, slot.sku)]
                depth = max(1, math.ceil(item.catalog.shelf_capacity / slot.facings))
                visible[slot.sku] = visible_facings(item.shelf, slot.facings, depth)
            self._seq += 1
            image, _ = render_frame(pg, visible, seed=self.seed * 100_000 + self._seq, size=self.size)
            name = ts.strftime("%Y%m%dT%H%M%S")
            uri = save_frame(image, self.root, pg.store_id, pg.camera_id, name)
            frames.append(CameraFrame(
                event_id=f"frame-{pg.store_id}-{pg.camera_id}-{name}", ts=ts, store_id=pg.store_id,
                camera_id=pg.camera_id, frame_uri=uri, width=self.size[0], height=self.size[1],
            ))
        return frames
