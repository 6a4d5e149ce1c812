"""Shelf detector: YOLO weights from `models/` on ONNX Runtime (CPU default) or ultralytics.

Run: `backroom detect IMAGE... --json` (one JSON object per image), or in Python::

    det = OnnxDetector("models/shelf-gap.onnx", threads=2)
    [dets] = det.detect([cv2.imread("shelf.jpg")])

Boxes come back in pixels of the original image. The ONNX path does its own letterbox and NMS
(numpy + cv2.dnn.NMSBoxes) so run time needs neither torch nor ultralytics; batches of frames
share one forward pass when the model has a dynamic batch axis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from backroom.vision import CLASSES

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "shelf-gap.onnx"


@dataclass(frozen=True)
class Detection:
    cls: int
    conf: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original-image pixels

    @property
    def name(self) -> str:
        return CLASSES[self.cls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cls": self.name,
            "conf": round(self.conf, 4),
            "box": [round(v, 1) for v in self.box],
        }


class Detector(Protocol):
    imgsz: int

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]: ...


def letterbox(
    img: np.ndarray, size: int, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect so the long side is `size`, pad with grey 114 (as ultralytics
    trains) to `shape` (h, w) — default size×size — centred. Returns (image, scale, (left, top))."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = shape or (size, size)
    top, left = (ph - nh) // 2, (pw - nw) // 2
    out = np.full((ph, pw, 3), 114, np.uint8)
    out[top : top + nh, left : left + nw] = img
    return out, r, (left, top)


def batch_shape(images: list[np.ndarray], size: int, stride: int = 32) -> tuple[int, int]:
    """Smallest stride-aligned (h, w) holding every letterboxed image: a 4:3 frame at 320 runs
    at 320×256 instead of 320×320, a fifth less work, when the model's input is dynamic."""
    hs, ws = [], []
    for im in images:
        h, w = im.shape[:2]
        r = min(size / h, size / w)
        hs.append(round(h * r))
        ws.append(round(w * r))
    return (-(-max(hs) // stride) * stride, -(-max(ws) // stride) * stride)


def nms_per_class(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int
) -> np.ndarray:
    """Indexes kept by class-aware NMS (offsetting boxes per class, one NMS call)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    off = boxes + (classes.astype(np.float32) * 4096.0)[:, None]
    xywh = np.column_stack([off[:, 0], off[:, 1], off[:, 2] - off[:, 0], off[:, 3] - off[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou, top_k=max_det)
    return np.asarray(keep, np.int64).reshape(-1)[:max_det]


class OnnxDetector:
    """YOLO (v8/11 export: output [B, 4+nc, anchors]) on ONNX Runtime."""

    def __init__(
        self,
        model: Path | str = DEFAULT_MODEL,
        threads: int = 0,
        conf: float = 0.25,
        iou: float = 0.6,
        max_det: int = 300,
        providers: list[str] | None = None,
        batch: int = 8,
        imgsz: int | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"detector weights not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if providers is None:
            # GPU when this onnxruntime build has it, else the CPU.
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider",) if p in avail]
            providers.append("CPUExecutionProvider")
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        self.imgsz = int(shape[2]) if isinstance(shape[2], int) else 320
        meta = self.session.get_modelmeta().custom_metadata_map
        if "imgsz" in meta:  # ultralytics writes the training size, e.g. "[320, 320]"
            self.imgsz = int(meta["imgsz"].strip("[]").split(",")[0])
        self.dynamic_shape = not isinstance(shape[2], int) and not isinstance(shape[3], int)
        if imgsz is not None:
            if not self.dynamic_shape and imgsz != self.imgsz:
                raise ValueError(f"{path}: fixed input {self.imgsz}px, cannot run at {imgsz}")
            self.imgsz = imgsz
        self.dynamic_batch = not isinstance(shape[0], int)
        self.dynamic_shape = not isinstance(shape[2], int) and not isinstance(shape[3], int)
        self.batch = batch if self.dynamic_batch else 1
        self.conf, self.iou, self.max_det = conf, iou, max_det

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for i in range(0, len(images), self.batch):
            chunk = images[i : i + self.batch]
            pad = batch_shape(chunk, self.imgsz) if self.dynamic_shape else None
            boxed = [letterbox(im, self.imgsz, pad) for im in chunk]
            x = np.stack([b[0] for b in boxed])[..., ::-1]  # BGR -> RGB
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
            pred = self._forward(x)
            for p, (_, r, (left, top)), im in zip(pred, boxed, chunk, strict=True):
                out.append(self._post(p, r, left, top, im.shape[1], im.shape[0]))
        return out

    def _post(
        self, p: np.ndarray, r: float, left: int, top: int, w: int, h: int
    ) -> list[Detection]:
        p = p.T  # anchors × (4 + nc)
        scores_all = p[:, 4:]
        cls = scores_all.argmax(1)
        scores = scores_all[np.arange(len(p)), cls]
        m = scores >= self.conf
        if not m.any():
            return []
        p, cls, scores = p[m], cls[m], scores[m]
        cx, cy, bw, bh = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        keep = nms_per_class(boxes, scores, cls, self.iou, self.max_det)
        boxes = boxes[keep]
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - left) / r, 0, w)
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - top) / r, 0, h)
        return [
            Detection(int(c), float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
            for b, s, c in zip(boxes, scores[keep], cls[keep], strict=True)
        ]


class UltralyticsDetector:
    """The same model through ultralytics/torch (needs the `[train]` extra)."""

    def __init__(
        self,
        model: Path | str = DEFAULT_MODEL.with_suffix(".pt"),
        imgsz: int = 320,
        conf: float = 0.25,
        iou: float = 0.6,
        device: str = "cpu",
        threads: int = 0,
        batch: int = 8,
    ) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        import torch
        from ultralytics import YOLO

        if threads:
            torch.set_num_threads(threads)
        self.model = YOLO(str(model), task="detect")
        self.imgsz, self.conf, self.iou, self.device, self.batch = imgsz, conf, iou, device, batch

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for i in range(0, len(images), self.batch):
            res = self.model.predict(
                images[i : i + self.batch],
                imgsz=self.imgsz,
                conf=self.conf,
                iou=self.iou,
                device=self.device,
                verbose=False,
            )
            for r in res:
                b: Any = r.boxes  # type: ignore[union-attr]
                xyxy = b.xyxy.cpu().numpy()
                confs, classes = b.conf.cpu().numpy(), b.cls.cpu().numpy()
                out.append(
                    [
                        Detection(
                            int(c),
                            float(s),
                            (float(xy[0]), float(xy[1]), float(xy[2]), float(xy[3])),
                        )
                        for xy, s, c in zip(xyxy, confs, classes, strict=True)
                    ]
                )
        return out


def load_detector(
    backend: str = "onnx",
    model: Path | str | None = None,
    threads: int = 0,
    conf: float = 0.25,
    batch: int = 8,
) -> Detector:
    """`onnx` (default, CPU or CUDA provider) or `ultralytics` (torch)."""
    if backend == "onnx":
        return OnnxDetector(model or DEFAULT_MODEL, threads=threads, conf=conf, batch=batch)
    if backend == "ultralytics":
        pt = Path(model) if model else DEFAULT_MODEL.with_suffix(".pt")
        return UltralyticsDetector(pt, conf=conf, threads=threads, batch=batch)
    raise ValueError(f"unknown detector backend {backend!r}: onnx or ultralytics")
