"""The dashboard: FastAPI app, websocket, static page, alert actions, camera frames.

    backroom dashboard                       # http://127.0.0.1:8000/ (BACKROOM_DASHBOARD_PORT)
    BACKROOM_DASHBOARD_HOST=0.0.0.0 BACKROOM_DASHBOARD_TOKEN=s3cret backroom dashboard
    # then open http://HOST:8000/?token=s3cret once (a cookie keeps you signed in)

`create_app(settings)` builds the app without touching the broker; its lifespan starts the
Kafka bridge (`consumers/ws_bridge.py`, reading `inventory.state`, `alerts` and
`shelf.observations` from the beginning) and the hub that flushes coalesced deltas to every
websocket (`dashboard/hub.py`). `serve(settings)` runs it with uvicorn and refuses to bind
beyond loopback without `BACKROOM_DASHBOARD_TOKEN`.

Endpoints: `/` (page), `/ws` (snapshot, then deltas), `/api/snapshot`, `/api/heatmap`,
`/api/stores/{store_id}/skus`, `/api/alerts`, `/api/alerts/{id}`, `POST /api/alerts/{id}/ack`,
`POST /api/alerts/{id}/resolve`, `/api/frame?uri=` (images under settings.frames_dir only),
`/api/status`, `/healthz`, and `/api/ask?q=` (dashboard/ask_api.py).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import anyio
from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from backroom import exposure
from backroom.exposure import (
    CSP,
    LOOPBACK_NAMES,
    SECURITY_HEADERS,
    ExposureError,
    SecurityHeaders,
    is_loopback,
)
from backroom.settings import Settings
from dashboard.feedback import feedback_router
from dashboard.hub import CLOSE, Hub
from dashboard.labels_api import labels_router
from dashboard.live import AlertNotOpen, LiveView, UnknownAlert

log = logging.getLogger("backroom.dashboard")

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "backroom_token"
PUBLIC_PATHS = frozenset({"/healthz"})
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


__all__ = ["CSP", "LOOPBACK_NAMES", "ExposureError", "check_exposure", "create_app", "is_loopback", "serve"]


def check_exposure(settings: Settings) -> None:
    """`backroom.exposure.check_exposure` for the dashboard's host and token."""
    exposure.check_exposure(settings.dashboard_host, settings.dashboard_token, "the dashboard")


def _has_control_chars(path: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in path)


def same_site_location(path: str, query: str) -> str:
    """A redirect target on this site: one leading slash (`//evil.example/x` would leave it)
    and the path percent-encoded, so it is a valid header value whatever the request held."""
    clean = "/" + path.lstrip("/")
    return quote(clean, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


class AuthMiddleware:
    """Token check for pages, API and websocket; Host/Origin checks against rebinding and CSRF.

    Accepted credentials: `Authorization: Bearer <token>`, the `backroom_token` cookie, or
    `?token=` (a page opened with it gets the cookie and is redirected to the clean URL).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.token = settings.dashboard_token
        self.allowed_hosts = exposure.allowed_hosts(settings.dashboard_host)

    def _presented(self, scope: Scope) -> tuple[str | None, bool]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        if "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(headers["cookie"])
            except Exception:
                jar = SimpleCookie()
            if COOKIE in jar:
                return jar[COOKIE].value, False
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query:
            return query["token"], True
        return None, False

    def _ok(self, presented: str | None) -> bool:
        assert self.token
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.token.encode()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if _has_control_chars(scope["path"]):
            # "%0d%0a" decodes to CR LF: refused before it can reach a header or a log line.
            await self._deny(scope, send, 400, "control characters in the request path")
            return
        unsafe = scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD", "OPTIONS")
        refusal = exposure.request_refusal(
            headers.get("host", ""), headers.get("origin"),
            token=self.token, allowed=self.allowed_hosts, unsafe=unsafe,
        )
        if refusal is not None:
            await self._deny(scope, send, 403, refusal)
            return
        if not self.token or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        presented, from_query = self._presented(scope)
        if not self._ok(presented):
            await self._deny(scope, send, 401, "missing or wrong token: open /?token=<BACKROOM_DASHBOARD_TOKEN> "
                                               "or send Authorization: Bearer <token>")
            return
        if (
            from_query
            and scope["type"] == "http"
            and scope.get("method") == "GET"
            and not scope["path"].startswith("/api/")
        ):
            # Swap the token in the URL for a cookie so it does not linger in history or logs.
            rest = [
                (k, v)
                for k, v in parse_qsl(scope.get("query_string", b"").decode())
                if k != "token"
            ]
            location = same_site_location(scope["path"], urlencode(rest))
            cookie = f"{COOKIE}={presented}; Path=/; HttpOnly; SameSite=Strict"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(scope: Scope, send: Send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the upgrade with HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message[:100]})
            return
        body = JSONResponse({"detail": message}).body
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})


def _mount_optional_routers(app: FastAPI, settings: Settings, state: dict[str, Any]) -> None:
    """The routers that live in their own modules: `/api/ask` (dashboard/ask_api.py)."""
    from dashboard.ask_api import ask_router

    app.include_router(ask_router(settings))
    state["ask"] = True


def create_app(
    settings: Settings, *, kafka: bool = True, view: LiveView | None = None, flush_s: float = 0.1
) -> FastAPI:
    """The dashboard app. No broker I/O here: the lifespan starts the bridge (unless kafka=False,
    for tests and the benchmark, which feed `app.state.view` directly)."""
    check_exposure(settings)
    view = view if view is not None else LiveView(horizon_hours=settings.horizon_hours, alert_budget=settings.alert_budget)
    hub = Hub(view, flush_s=flush_s)
    features: dict[str, Any] = {"ask": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from consumers.ws_bridge import KafkaBridge

        bridge = KafkaBridge(settings, view) if kafka else None
        app.state.bridge = bridge
        hub.start()
        if bridge is not None:
            bridge.start()
        try:
            yield
        finally:
            if bridge is not None:
                await bridge.stop()
            await hub.stop()

    app = FastAPI(title="Backroom dashboard", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.view = view
    app.state.hub = hub
    app.state.bridge = None
    app.state.settings = settings

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        bridge = app.state.bridge
        return {
            "kafka": bridge.status if bridge is not None else None,
            "counts": view.counts,
            "now": view.now,
            "clients": len(hub.clients),
            "hub": {k: v for k, v in vars(hub.stats).items() if k != "extra"} | hub.stats.extra,
            "features": features,
        }

    @app.get("/api/snapshot")
    async def snapshot() -> dict[str, Any]:
        return view.snapshot()

    @app.get("/api/heatmap")
    async def heatmap() -> list[dict[str, Any]]:
        return view.heatmap()

    @app.get("/api/stores/{store_id}/skus")
    async def store_skus(store_id: str) -> list[dict[str, Any]]:
        rows = [s for s in view.states.values() if s.get("store_id") == store_id]
        if not rows:
            raise HTTPException(404, f"no inventory state for store {store_id!r}")
        return sorted(rows, key=lambda s: s["sku"])

    @app.get("/api/alerts")
    async def alerts(
        status: str = Query("open", pattern="^(open|resolved|all)$"),
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if status in ("open", "all"):
            out += view.alerts.values()
        if status in ("resolved", "all"):
            out += view.resolved.values()
        return out

    @app.get("/api/alerts/{alert_id}")
    async def alert(alert_id: str) -> dict[str, Any]:
        found = view.get_alert(alert_id)
        if found is None:
            raise HTTPException(404, f"no alert with id {alert_id!r}")
        return found

    def _act(action: Callable[[str], dict[str, Any]], alert_id: str) -> dict[str, Any]:
        try:
            return action(alert_id)
        except UnknownAlert:
            raise HTTPException(404, f"no alert with id {alert_id!r}") from None
        except AlertNotOpen:
            raise HTTPException(409, f"alert {alert_id!r} is already resolved") from None

    @app.post("/api/alerts/{alert_id}/ack")
    async def ack(alert_id: str) -> dict[str, Any]:
        return _act(view.acknowledge, alert_id)

    @app.post("/api/alerts/{alert_id}/resolve")
    async def resolve(alert_id: str) -> dict[str, Any]:
        return _act(view.resolve, alert_id)

    app.include_router(feedback_router(settings, view, kafka=kafka))  # POST .../false-alarm (dashboard/feedback.py)

    @app.get("/api/frame")
    async def frame(uri: str = Query(..., min_length=1, max_length=1024)) -> Response:
        return await anyio.to_thread.run_sync(_frame_response, settings, uri)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = hub.connect()

        async def sender() -> None:
            while True:
                text = await client.queue.get()
                if text is CLOSE or text == CLOSE:
                    await websocket.close(1001)
                    return
                await websocket.send_text(text)

        async def receiver() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                msg = message.get("text")
                if msg is None:
                    # The page only sends text; one line, not a traceback per frame.
                    log.warning("websocket client sent a binary frame; closing with 1003")
                    await websocket.close(1003, "text frames only")
                    return
                if msg == "resync":  # the page saw a seq gap: queue a fresh snapshot
                    from dashboard.hub import dumps

                    client.queue.put_nowait(
                        dumps(view.snapshot())
                    ) if not client.queue.full() else None

        try:
            async with anyio.create_task_group() as tg:

                async def run_then_cancel(fn: Callable[[], Awaitable[None]]) -> None:
                    try:
                        await fn()
                    finally:
                        tg.cancel_scope.cancel()

                tg.start_soon(run_then_cancel, sender)
                tg.start_soon(run_then_cancel, receiver)
        except (WebSocketDisconnect, RuntimeError):
            pass
        except BaseExceptionGroup as eg:  # disconnect seen by both tasks at once
            if not eg.subgroup((WebSocketDisconnect, RuntimeError, OSError)):
                raise
        finally:
            hub.disconnect(client)

    app.include_router(labels_router(settings, view))  # /api/labels: labels from the floor
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _mount_optional_routers(app, settings, features)
    # Outermost first: auth wraps everything, including mounted routers and static files.
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    app.add_middleware(AuthMiddleware, settings=settings)  # type: ignore[arg-type]
    return app


IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


def _frame_response(settings: Settings, uri: str) -> Response:
    """A camera frame from settings.frames_dir only, after the vision module's path checks."""
    from backroom.records import InvalidEvent
    from backroom.vision.frames import image_header, read_frame_bytes, resolve_frame_path

    try:
        path = resolve_frame_path(uri, settings.frames_dir)
        data = read_frame_bytes(path, settings.frame_max_bytes)
        kind, _w, _h = image_header(data)
    except InvalidEvent as exc:
        status = 404 if "not found" in exc.reason else 400
        return JSONResponse({"detail": exc.reason}, status_code=status)
    media = IMAGE_TYPES.get(kind)
    if media is None:
        return JSONResponse({"detail": f"unsupported image type {kind!r}"}, status_code=415)
    return Response(data, media_type=media, headers={"cache-control": "private, max-age=3600"})


def serve(settings: Settings) -> None:
    """Run the dashboard with uvicorn on settings.dashboard_host:dashboard_port."""
    import uvicorn

    try:
        check_exposure(settings)
    except ExposureError as exc:
        raise SystemExit(str(exc)) from None
    app = create_app(settings)
    host = settings.dashboard_host
    shown = f"[{host}]" if ":" in host else host
    print(f"Backroom dashboard on http://{shown}:{settings.dashboard_port}/", flush=True)
    # No permessage-deflate: it would compress every delta once per client (CPU × clients) to
    # save bandwidth that a store LAN does not lack; the delta is serialised once and shared.
    uvicorn.run(app, host=host, port=settings.dashboard_port, log_level="warning",
                ws_per_message_deflate=False, ws_ping_interval=20, ws_ping_timeout=20,
                timeout_graceful_shutdown=3)
