"""Dashboard HTTP API and websocket without a broker: auth, 4xx answers, frames, exposure.

    pytest tests/unit/test_dashboard_api.py

The app is built with kafka=False and its live view fed directly, so these run anywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import orjson
import pytest
from starlette.websockets import WebSocketDisconnect

from backroom.settings import Settings
from dashboard.server import ExposureError, check_exposure, create_app, is_loopback, serve

with warnings.catch_warnings():  # starlette nags about httpx2; the test client works as it is
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8000"
WS = "ws://127.0.0.1:8000/ws"


def feed(app: Any) -> None:
    view = app.state.view
    view.apply_state({"ts": "2026-11-27T09:00:00Z", "store_id": "S1", "sku": "A", "shelf_qty": 0,
                      "backroom_qty": 6, "shelf_capacity": 12, "demand_per_hour": 1.5, "version": 1,
                      "category": "dairy"})
    view.apply_alert({"alert_id": "al-1", "ts": "2026-11-27T09:00:00Z", "store_id": "S1", "sku": "A",
                      "type": "RESTOCK_SHELF", "status": "open", "severity": "high", "message": "m",
                      "action": "move 6 units", "evidence": {"shelf_qty": 0}})


@pytest.fixture
def make(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., tuple[Any, httpx.AsyncClient]]]:
    clients: list[httpx.AsyncClient] = []

    def build(**overrides: Any) -> tuple[Any, httpx.AsyncClient]:
        app = create_app(settings_factory(**overrides), kafka=False)
        feed(app)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(client)
        return app, client

    yield build


async def test_page_api_and_security_headers_on_loopback(make: Any) -> None:
    _, c = make()
    page = await c.get("/")
    assert page.status_code == 200 and "<title>Backroom" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    js = await c.get("/static/app.js")
    assert js.status_code == 200 and "new WebSocket" in js.text
    assert (await c.get("/api/stores/S1/skus")).json()[0]["sku"] == "A"
    heat = (await c.get("/api/heatmap")).json()
    assert heat[0]["store_id"] == "S1" and heat[0]["open_alerts"] == 1
    assert (await c.get("/api/alerts")).json()[0]["alert_id"] == "al-1"
    # CORS stays closed: no Access-Control-Allow-Origin, preflights are not granted.
    pre = await c.options("/api/alerts/al-1/ack", headers={"origin": "http://evil.test",
                                                            "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


async def test_unknown_ids_answer_4xx_with_a_message(make: Any) -> None:
    _, c = make()
    r = await c.post("/api/alerts/nope/ack")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert (await c.get("/api/alerts/nope")).status_code == 404
    assert (await c.get("/api/stores/S9/skus")).status_code == 404
    assert (await c.post("/api/alerts/al-1/ack")).json()["acked"] is True
    assert (await c.post("/api/alerts/al-1/resolve")).json()["status"] == "resolved"
    again = await c.post("/api/alerts/al-1/resolve")
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert (await c.get("/api/alerts", params={"status": "bogus"})).status_code == 422


async def test_dns_rebinding_and_cross_origin_writes_are_refused(make: Any) -> None:
    _, c = make()
    assert (await c.get("/api/status", headers={"host": "evil.test:8000"})).status_code == 403
    r = await c.post("/api/alerts/al-1/ack", headers={"origin": "http://evil.test"})
    assert r.status_code == 403
    ok = await c.post("/api/alerts/al-1/ack", headers={"origin": BASE})
    assert ok.status_code == 200


async def test_token_guards_pages_api_and_static(make: Any) -> None:
    _, c = make(dashboard_token="s3cret")
    for path in ("/", "/api/snapshot", "/static/app.js", "/api/alerts/al-1"):
        r = await c.get(path)
        assert r.status_code == 401, path
        assert "token" in r.json()["detail"]
    assert (await c.get("/api/snapshot", headers={"authorization": "Bearer wrong"})).status_code == 401
    assert (await c.get("/api/snapshot", headers={"authorization": "Bearer s3cret"})).status_code == 200
    assert (await c.get("/healthz")).status_code == 200  # liveness probes need no token
    # ?token= on a page: a cookie, and a redirect to the clean URL.
    r = await c.get("/", params={"token": "s3cret"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert (await c.get("/api/status", cookies={"backroom_token": "s3cret"})).status_code == 200
    assert (await c.get("/api/status", params={"token": "s3cret"})).status_code == 200
    # With a token the server may sit behind any host name.
    r = await c.get("/api/status", headers={"host": "dash.example:8000", "authorization": "Bearer s3cret"})
    assert r.status_code == 200


def test_websocket_snapshot_then_delta_and_token(settings_factory: Callable[..., Settings]) -> None:
    app = create_app(settings_factory(), kafka=False, flush_s=0.02)
    feed(app)
    with TestClient(app, base_url=BASE) as client, client.websocket_connect(WS) as ws:
        snap = orjson.loads(ws.receive_text())
        assert snap["type"] == "snapshot" and snap["states"]["r"][0][2] == "A"
        assert snap["alerts"][0]["alert_id"] == "al-1"
        app.state.view.apply_alert({"alert_id": "al-1", "ts": "2026-11-27T09:05:00Z", "store_id": "S1",
                                    "sku": "A", "type": "RESTOCK_SHELF", "status": "resolved",
                                    "severity": "high", "message": "r", "action": "none",
                                    "evidence": {}})
        for _ in range(5):
            msg = orjson.loads(ws.receive_text())
            if msg["type"] == "delta" and msg["alerts"]:
                break
        assert msg["alerts"][0]["status"] == "resolved" and msg["now"] == snap["now"] + 300

    locked = create_app(settings_factory(dashboard_token="tok"), kafka=False)
    with TestClient(locked, base_url=BASE) as client:
        with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(WS):
            pass
        assert exc.value.code == 1008
        with client.websocket_connect(WS + "?token=tok") as ws:
            assert orjson.loads(ws.receive_text())["type"] == "snapshot"
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            WS + "?token=tok", headers={"origin": "http://evil.test"}
        ):
            pass


async def test_frames_only_from_the_frame_root(make: Any, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    (frames / "S1").mkdir(parents=True)
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    (frames / "S1" / "f1.png").write_bytes(png.tobytes())
    (frames / "S1" / "notes.png").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(png.tobytes())
    (frames / "S1" / "link.png").symlink_to(tmp_path / "secret.png")
    _, c = make(frame_root=frames)
    r = await c.get("/api/frame", params={"uri": "S1/f1.png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == png.tobytes()
    assert (await c.get("/api/frame", params={"uri": f"file://{frames}/S1/f1.png"})).status_code == 200
    for uri, code in [
        ("../secret.png", 400), (str(tmp_path / "secret.png"), 400), ("S1/link.png", 400),
        ("http://example.com/x.png", 400), ("S1/missing.png", 404), ("S1/notes.png", 400),
    ]:
        r = await c.get("/api/frame", params={"uri": uri})
        assert r.status_code == code, (uri, r.text)
        assert r.json()["detail"]


def test_exposure_needs_a_token(settings_factory: Callable[..., Settings]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    wide = settings_factory(dashboard_host="0.0.0.0")
    with pytest.raises(ExposureError, match="BACKROOM_DASHBOARD_TOKEN"):
        check_exposure(wide)
    with pytest.raises(ExposureError):
        create_app(wide, kafka=False)
    with pytest.raises(SystemExit, match="BACKROOM_DASHBOARD_TOKEN"):
        serve(wide)
    check_exposure(settings_factory(dashboard_host="0.0.0.0", dashboard_token="t"))


# --- hardening (issue 21) ---------------------------------------------------------------------


async def test_empty_token_is_unset_and_keeps_the_host_check(make: Any, settings_factory: Callable[..., Settings]) -> None:
    _, c = make(dashboard_token="")
    r = await c.get("/api/status", headers={"host": "rebound.example:8000"})
    assert r.status_code == 403 and r.json()["detail"] == "unexpected Host header"
    assert (await c.get("/api/status")).status_code == 200  # loopback, no token: as when unset
    with pytest.raises(ExposureError, match="BACKROOM_DASHBOARD_TOKEN"):
        check_exposure(settings_factory(dashboard_host="0.0.0.0", dashboard_token=""))


async def test_token_redirect_stays_on_site(make: Any) -> None:
    _, c = make(dashboard_token="s3cret")
    for path, want in [("//evil.example/x", "/evil.example/x"), ("///evil.example", "/evil.example"),
                       ("/\\evil.example/x", "/%5Cevil.example/x"), ("/a b", "/a%20b")]:
        c.cookies.clear()  # a cookie from the last round would skip the redirect
        r = await c.get(BASE + path, params={"token": "s3cret", "view": "1"})  # the raw path, not a host
        assert r.status_code == 303, path
        assert r.headers["location"] == want + "?view=1", (path, r.headers["location"])


async def test_control_characters_in_a_path_get_a_clean_400(make: Any) -> None:
    _, c = make(dashboard_token="s3cret")
    r = await c.get("/%0d%0aSet-Cookie:%20x=1", params={"token": "s3cret"})
    assert r.status_code == 400 and "control characters" in r.json()["detail"]
    assert "set-cookie" not in r.headers
    _, open_c = make()
    assert (await open_c.get("/static/%0aapp.js")).status_code == 400


def test_binary_websocket_frames_get_one_log_line_and_a_clean_close(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_factory(), kafka=False, flush_s=0.02)
    feed(app)
    caplog.set_level("INFO")
    with TestClient(app, base_url=BASE) as client:
        with client.websocket_connect(WS) as ws:
            assert orjson.loads(ws.receive_text())["type"] == "snapshot"
            ws.send_bytes(b"\x00\x01binary")
            with pytest.raises(WebSocketDisconnect) as exc:
                for _ in range(20):
                    ws.receive_text()
            assert exc.value.code == 1003
        assert not app.state.hub.clients
        with client.websocket_connect(WS) as ws:  # the server keeps serving
            assert orjson.loads(ws.receive_text())["type"] == "snapshot"
    lines = [r for r in caplog.records if "binary" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
