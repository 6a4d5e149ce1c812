"""Frames in, shelf observations out: the plain class behind the Faust vision agent.

The agent (streams/) runs `VisionPipeline.process` in a thread pool, with every frame that
queued up since the last call, so inference is batched and the event loop never blocks::

    pipe = VisionPipeline(settings)                      # loads models/shelf-gap.onnx
    results = pipe.process(frames, planograms)           # planograms keyed "store:camera"
    for frame, res in zip(frames, results):
        if isinstance(res, InvalidEvent): dead_letter(frame, res.reason)
        else: send each ShelfObservation in res

One bad frame never fails the batch: it comes back as its own `InvalidEvent`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from backroom.records import CameraFrame, InvalidEvent, Planogram, ShelfObservation
from backroom.settings import Settings
from backroom.vision.detector import DEFAULT_MODEL, Detector, load_detector
from backroom.vision.frames import open_frame
from backroom.vision.gapcues import with_cue_gaps
from backroom.vision.shelf import observations

FrameResult = list[ShelfObservation] | InvalidEvent


def planogram_key(store_id: str, camera_id: str) -> str:
    return f"{store_id}:{camera_id}"


class VisionPipeline:
    def __init__(self, settings: Settings, detector: Detector | None = None) -> None:
        self.settings = settings
        self.root = Path(settings.frames_dir)
        self.detector = detector or load_detector(
            settings.detector_backend,
            settings.detector_model or DEFAULT_MODEL,
            threads=settings.detector_threads,
            conf=settings.detector_conf,
            batch=settings.vision_batch,
        )
        # ONNX Runtime sessions are thread-safe, but one inference at a time keeps latency
        # predictable when the agent's pool has several threads.
        self._lock = threading.Lock()

    def load(self, frame: CameraFrame) -> np.ndarray:
        return open_frame(
            frame.frame_uri,
            self.root,
            self.settings.frame_max_bytes,
            self.settings.frame_max_pixels,
        )

    def process(
        self, frames: list[CameraFrame], planograms: dict[str, Planogram]
    ) -> list[FrameResult]:
        """One result per frame, in order: its observations, or the InvalidEvent it raised.

        A frame whose camera has no planogram yet is refused (the planogram is compacted
        master data; the frame can be replayed once it arrives)."""
        results: list[FrameResult | None] = [None] * len(frames)
        images: list[np.ndarray] = []
        todo: list[tuple[int, Planogram]] = []
        for i, fr in enumerate(frames):
            pg = planograms.get(planogram_key(fr.store_id, fr.camera_id))
            if pg is None:
                results[i] = InvalidEvent(f"no planogram for camera {fr.store_id}:{fr.camera_id}")
                continue
            try:
                images.append(self.load(fr))
            except InvalidEvent as exc:
                results[i] = exc
                continue
            todo.append((i, pg))
        if images:
            with self._lock:
                dets = self.detector.detect(images)
            for (i, pg), img, d in zip(todo, images, dets, strict=True):
                fr = frames[i]
                if self.settings.gap_cues:
                    d = with_cue_gaps(img, d)
                h, w = img.shape[:2]
                results[i] = observations(pg, d, w, h, fr.ts, fr.event_id, fr.frame_uri)
        return [r if r is not None else InvalidEvent("frame not processed") for r in results]
