"""Labels from the floor: the dashboard routes that save a frame's corrected boxes.

    curl -s localhost:8000/api/labels                      # count, box totals, recent examples
    curl -s -X POST localhost:8000/api/labels -H 'content-type: application/json' \\
         -d '{"alert_id": "al-1", "frame_event_id": "fr-1", "wrong": [[120,40,200,180]],
              "drawn": [[210,50,290,170]], "units": "px"}'

`labels_router(settings, view)` is included by `dashboard/server.py`, so the dashboard's token,
Host and Origin checks cover it like every other route. The page names the evidence it showed
(`alert_id`, or `store_id` + `sku` for the latest observation) and the `frame_event_id` it drew;
the detector's boxes are taken from the server's own copy of that frame's observations (every
slot of the frame it has seen), not from the request, so a page cannot relabel boxes it was not
shown. `backroom.vision.labels.LabelStore` checks and writes the example under
`<data_dir>/labels`; every refusal is a 4xx with a message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backroom.settings import Settings
from backroom.vision.labels import MAX_DRAWN, MAX_WRONG, LabelError, LabelRequest, LabelStore
from dashboard.live import LiveView

MAX_BODY_BYTES = 65_536

Coords = list[float]


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: str | None = Field(default=None, min_length=1, max_length=128)
    store_id: str | None = Field(default=None, min_length=1, max_length=64)
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    frame_event_id: str = Field(min_length=1, max_length=128)
    wrong: list[Coords] = Field(default_factory=list, max_length=MAX_WRONG)
    drawn: list[Coords] = Field(default_factory=list, max_length=MAX_DRAWN)
    units: Literal["px", "norm"] = "px"
    by: str = Field(default="operator", min_length=1, max_length=64)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def label_store(settings: Settings) -> LabelStore:
    return LabelStore(settings.data_dir / "labels", settings.frames_dir, settings.frame_max_bytes,
                      settings.frame_max_pixels)


def frame_boxes(view: LiveView, obs: dict[str, Any]) -> list[dict[str, Any]]:
    """The observation's boxes plus those of every other slot of the same frame the view holds,
    so one SKU's evidence does not save the rest of the frame as unlabelled background."""
    boxes = list(obs.get("boxes") or [])
    for other in view.observations.values():
        if other is obs or other.get("frame_event_id") != obs.get("frame_event_id"):
            continue
        if (other.get("store_id"), other.get("camera_id")) != (obs.get("store_id"), obs.get("camera_id")):
            continue
        boxes += other.get("boxes") or []
    return boxes


def labels_router(settings: Settings, view: LiveView) -> APIRouter:
    router = APIRouter()
    store = label_store(settings)

    @router.get("/api/labels")
    async def labels(recent: int = Query(20, ge=0, le=500)) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(store.summary, recent)

    @router.post("/api/labels")
    async def save_labels(request: Request) -> JSONResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Also keeps plain HTML forms (which cannot send JSON) from posting here.
            return _error(415, "send the labels as application/json")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _error(413, f"label body larger than {MAX_BODY_BYTES} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                return _error(413, f"label body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = LabelBody.model_validate_json(raw or b"null")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            return _error(422, f"bad label body at {where}: {first.get('msg')}")

        store_id = body.store_id
        if body.alert_id is not None:
            alert = view.get_alert(body.alert_id)
            if alert is None:
                return _error(404, f"no alert with id {body.alert_id!r}")
            store_id = alert.get("store_id")
            key = f"{store_id}:{alert.get('sku')}"
            obs = (alert.get("evidence") or {}).get("observation") or view.observations.get(key)
        elif body.store_id and body.sku:
            obs = view.observations.get(f"{body.store_id}:{body.sku}")
        else:
            return _error(422, "name the evidence: alert_id, or store_id and sku")
        if not obs or not obs.get("frame_uri"):
            return _error(404, "this evidence has no camera frame to label")
        if str(obs.get("frame_event_id")) != body.frame_event_id:
            return _error(409, f"the evidence now shows frame {obs.get('frame_event_id')!r}, not "
                               f"{body.frame_event_id!r}: reopen it and label again")
        now = view.now
        req = LabelRequest(
            frame_uri=str(obs["frame_uri"]),
            frame_event_id=body.frame_event_id,
            store_id=str(obs.get("store_id") or store_id or ""),
            camera_id=str(obs.get("camera_id") or ""),
            boxes=frame_boxes(view, obs),
            wrong=body.wrong,
            drawn=body.drawn,
            units=body.units,
            frame_ts=obs.get("ts"),
            labelled_ts=dt.datetime.fromtimestamp(now, dt.UTC).isoformat() if now else None,
            sku=obs.get("sku"),
            alert_id=body.alert_id,
            by=body.by,
        )
        try:
            saved = await anyio.to_thread.run_sync(store.save, req)
        except LabelError as exc:
            return _error(exc.status, exc.reason)
        return JSONResponse({**saved.meta, "saved": True}, status_code=201)

    return router
