"""The vision step of the worker: frames → detector (off the event loop) → shelf observations.

`VisionRunner.run(messages, planogram)` decodes `camera.frames` messages, runs the
`VisionPipeline` in a worker thread (inference must never block the event loop), and returns the
observations to publish and the dead letters. The detector loads on first use, so a worker
without weights still runs everything else and dead-letters frames with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from backroom.processing import RawMessage, dead_letter
from backroom.records import (
    CameraFrame,
    DeadLetter,
    InvalidEvent,
    Planogram,
    ShelfObservation,
    decode,
)
from backroom.settings import Settings

log = logging.getLogger("backroom.vision")


@dataclass
class VisionResult:
    observations: list[ShelfObservation] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class VisionRunner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision")
        self._pipeline: Any = None
        self._load_error: str | None = None

    def _get_pipeline(self) -> Any:
        if self._pipeline is None and self._load_error is None:
            try:
                from backroom.vision.pipeline import VisionPipeline

                self._pipeline = VisionPipeline(self.settings)
            except Exception as exc:  # a missing or broken model must not stop the worker
                self._load_error = f"detector unavailable: {exc}"
                log.error(self._load_error)
        return self._pipeline

    async def run(self, messages: Sequence[RawMessage],
                  planogram: Callable[[str], dict[str, Any] | None]) -> VisionResult:
        result = VisionResult()
        frames: list[tuple[RawMessage, CameraFrame]] = []
        for msg in messages:
            try:
                fr = decode(CameraFrame, msg.value, self.settings.max_event_bytes)
                got = msg.key.decode("utf-8", errors="replace") if msg.key is not None else None
                if got != f"{fr.store_id}:{fr.camera_id}":
                    raise InvalidEvent(f"key {got!r} does not match store_id:camera_id")
            except InvalidEvent as exc:
                result.dead.append(dead_letter(msg, exc.reason))
                continue
            frames.append((msg, fr))
        if not frames:
            return result
        loop = asyncio.get_running_loop()
        pipeline = await loop.run_in_executor(self.pool, self._get_pipeline)
        if pipeline is None:
            result.dead += [dead_letter(m, self._load_error or "detector unavailable") for m, _ in frames]
            return result
        plans = {}
        for _, fr in frames:
            k = f"{fr.store_id}:{fr.camera_id}"
            value = planogram(k)
            if value is not None:
                plans[k] = Planogram.model_validate(value)
        outcomes = await loop.run_in_executor(self.pool, pipeline.process, [f for _, f in frames], plans)
        for (msg, _), outcome in zip(frames, outcomes, strict=True):
            if isinstance(outcome, InvalidEvent):
                result.dead.append(dead_letter(msg, outcome.reason))
            else:
                result.observations.extend(outcome)
        return result
