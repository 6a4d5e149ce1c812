"""HTTP ingest for POS and ERP systems: validated events into the contract topics.

Run: `backroom ingest` (serves on 127.0.0.1:<dashboard_port + 1>; docs at /docs), e.g.

    curl -X POST localhost:8001/api/v1/sales -H 'Content-Type: application/json' \\
         -H "Authorization: Bearer $BACKROOM_DASHBOARD_TOKEN" \\
         -d '{"event_id":"t1-1","ts":"2026-11-27T09:15:00Z","store_id":"S001","sku":"MILK-1L","qty":2}'

Endpoints (single event, or a JSON array of up to `settings.ingest_max_batch` on `/batch`):
`/api/v1/sales`, `/api/v1/scans`, `/api/v1/frames`, `/api/v1/catalog/skus`, `/api/v1/planograms`,
`/api/v1/alerts/feedback` (false-alarm feedback, docs/floor.md).
Answers: 202 accepted; 401 without the bearer token when `dashboard_token` is set; 403 for a
foreign `Host` without a token (DNS rebinding) or a foreign `Origin` (cross-site); 415 unless
`Content-Type` is JSON; 413 over `ingest_max_body_bytes`; 422 with one entry per bad field
(`loc`, `msg`; at most 20, then one `too_many_errors` entry with the total) for invalid events,
for a batch over `ingest_max_batch` events (counted before any event is validated), and for an
event more than `max_future_hours` ahead of the latest event time this API accepted for its
store (backroom/eventtime.py); for a batch nothing is published unless every event is valid;
503 when Kafka does not take them. Like the dashboard, it refuses to bind beyond loopback
without `BACKROOM_DASHBOARD_TOKEN`. `/docs` is Swagger UI served from producers/static (no
CDN); every response carries a Content-Security-Policy.

`ingest_router(settings, publish)` is the testable core: `publish(topic, key, value)` is any async
callable. `create_ingest_app(settings)` wires it to an AIOKafkaProducer (acks=all, idempotent)
started in the app's lifespan, so importing this module does no broker I/O.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from backroom.eventtime import FutureGuard, micros
from backroom.exposure import SecurityHeaders, allowed_hosts, check_exposure, request_refusal
from backroom.records import (
    AlertFeedback,
    CameraFrame,
    CatalogSku,
    Code,
    Planogram,
    Record,
    Sale,
    Scan,
)
from backroom.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
MAX_ERRORS = 20  # field errors listed in a 422; the rest are counted

Publish = Callable[[str, str, bytes], Awaitable[None]]


class CatalogSkuIn(CatalogSku):
    """A catalog entry as posted: the record plus the store it applies to ("*" = every store)."""

    store_id: Code | Literal["*"] | None = Field(
        default=None, description='store code, or omit / "*" for every store'
    )


class Accepted(BaseModel):
    accepted: int
    topic: str
    keys: list[str]


class ErrorDetail(BaseModel):
    detail: Any


# topic, record type as posted, key of one record
_ENDPOINTS: tuple[tuple[str, str, type[Record], Callable[[Any], str]], ...] = (
    ("sales", "pos.sales", Sale, lambda r: f"{r.store_id}:{r.sku}"),
    ("scans", "backroom.scans", Scan, lambda r: f"{r.store_id}:{r.sku}"),
    ("frames", "camera.frames", CameraFrame, lambda r: f"{r.store_id}:{r.camera_id}"),
    ("catalog/skus", "catalog.skus", CatalogSkuIn, lambda r: f"{r.store_id or '*'}:{r.sku}"),
    ("planograms", "catalog.planograms", Planogram, lambda r: f"{r.store_id}:{r.camera_id}"),
    ("alerts/feedback", "alerts.feedback", AlertFeedback, lambda r: f"{r.store_id}:{r.sku}"),
)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"detail": "missing or wrong bearer token (Authorization: Bearer <BACKROOM_DASHBOARD_TOKEN>)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def token_ok(settings: Settings, authorization: str | None) -> bool:
    if not settings.dashboard_token:
        return True
    if not authorization or not authorization.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), settings.dashboard_token.encode())


def _guarded_route(settings: Settings) -> type[APIRoute]:
    """A route class checking the token and the body size before FastAPI reads the body.

    FastAPI parses the body before dependencies run, so a dependency cannot stop a huge upload;
    wrapping the route handler can, and works wherever the router is mounted.
    """
    limit = settings.ingest_max_body_bytes
    hosts = allowed_hosts(settings.dashboard_host)

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                # Every ingest route changes state (POST): the Origin check always applies.
                refusal = request_refusal(
                    request.headers.get("host", ""), request.headers.get("origin"),
                    token=settings.dashboard_token, allowed=hosts, unsafe=True,
                )
                if refusal is not None:
                    return JSONResponse({"detail": refusal}, status_code=403)
                if not token_ok(settings, request.headers.get("authorization")):
                    return _unauthorized()
                if not _is_json(request.headers.get("content-type")):
                    # A browser sends text/plain or a form cross-site without a preflight: JSON only.
                    return JSONResponse(
                        {"detail": "Content-Type must be application/json"}, status_code=415
                    )
                declared = request.headers.get("content-length")
                too_big = JSONResponse(
                    {"detail": f"request body over {limit} bytes; split the batch"}, status_code=413
                )
                if declared is not None:
                    try:
                        if int(declared) > limit:
                            return too_big
                    except ValueError:
                        return JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
                body = bytearray()
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        return too_big
                request._body = bytes(body)  # Starlette serves later reads from this cache
                return await handler(request)

            return guarded

    return GuardedRoute


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _errors(exc: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic errors as JSON-safe field messages: loc, msg, type (no input echo, no ctx
    objects), at most MAX_ERRORS of them and then one entry with the total."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    out: list[dict[str, Any]] = [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        out.append({
            "loc": list(prefix), "type": "too_many_errors",
            "msg": f"{len(errors)} errors in all; the first {MAX_ERRORS} are listed",
        })
    return out


def _validate(adapter: TypeAdapter[Any], body: bytes) -> Any:
    """Validate a body in strict JSON mode (ISO strings become datetimes, "3" is not a
    quantity: the rules of `records.decode`). CPU-bound: the routes run it in a thread."""
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(_errors(exc)) from None


def _batch_count(body: bytes) -> int | None:
    """Items in a JSON array body, None when the body is not one (validation then says why)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return len(data) if isinstance(data, list) else None


def ingest_router(settings: Settings, publish: Publish) -> APIRouter:
    """POST endpoints for every inbound contract topic, single and batch."""
    router = APIRouter(prefix="/api/v1", tags=["ingest"], route_class=_guarded_route(settings))
    max_batch = settings.ingest_max_batch
    future = FutureGuard(settings.max_future_hours)

    def check_future(items: list[Any], batch: bool) -> None:
        """422 when an event is too far ahead of this API's event time for its store; the
        watermarks move only when the whole request passes."""
        def run(trial: FutureGuard) -> list[dict[str, Any]]:
            errors = []
            for i, r in enumerate(items):
                ts = getattr(r, "ts", None)
                if ts is None:
                    continue
                reason = trial.check(r.store_id, micros(ts), f"{r.store_id}:{getattr(r, 'sku', '')}")
                if reason is not None:
                    errors.append({"loc": ["body", i, "ts"] if batch else ["body", "ts"], "msg": reason,
                                   "type": "far_future"})
            return errors

        trial = future.copy()
        errors = run(trial)
        if errors:
            # A batch is all-or-nothing: when its own later events confirmed a jump (two SKUs
            # agreeing), the earlier ones are judged again against the moved watermark.
            errors = run(trial)
        if errors:
            future.remember_refusals(trial)
            raise RequestValidationError(errors[:MAX_ERRORS])
        future.adopt(trial)

    def add(path: str, topic: str, record_type: type[Record], key_of: Callable[[Any], str]) -> None:
        single = TypeAdapter(record_type)
        batch = TypeAdapter(list[record_type])  # type: ignore[valid-type]
        full_topic = settings.topic(topic)

        async def send(items: list[Any], batch: bool = False) -> Accepted:
            check_future(items, batch)
            # One zone downstream: offsets are valid ISO-8601, but UTC keeps logs comparable.
            items = [
                r.model_copy(update={"ts": r.ts.astimezone(UTC)}) if getattr(r, "ts", None) else r
                for r in items
            ]
            keys = [key_of(r) for r in items]
            # Order matters per key (a count then a move of one SKU), not across keys: publish
            # each key's events in sequence and the keys concurrently.
            by_key: dict[str, list[bytes]] = {}
            for k, r in zip(keys, items, strict=True):
                value = r.model_dump_json(exclude_none=True, exclude={"store_id"}).encode() if (
                    isinstance(r, CatalogSkuIn)
                ) else r.to_json()
                by_key.setdefault(k, []).append(value)

            async def one_key(k: str, values: list[bytes]) -> None:
                for v in values:
                    await publish(full_topic, k, v)

            try:
                await asyncio.gather(*(one_key(k, vs) for k, vs in by_key.items()))
            except Exception as exc:
                # The broker did not take them (down, timeout): the client keeps the events and
                # retries; event ids make the retry harmless downstream.
                raise HTTPException(
                    status_code=503,
                    detail=f"events not accepted by Kafka ({type(exc).__name__}); retry",
                    headers={"Retry-After": "5"},
                ) from None
            return Accepted(accepted=len(items), topic=full_topic, keys=keys)

        schema_single = record_type.model_json_schema(mode="validation")
        openapi_single = {
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema_single}}}
        }
        openapi_batch = {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": schema_single, "minItems": 1, "maxItems": max_batch}
                    }
                },
            }
        }
        responses: dict[int | str, dict[str, Any]] = {
            401: {"model": ErrorDetail, "description": "missing or wrong bearer token"},
            413: {"model": ErrorDetail, "description": "body too large"},
            422: {"model": ErrorDetail, "description": "invalid event(s): one entry per bad field"},
            503: {"model": ErrorDetail, "description": "Kafka unavailable; retry"},
        }

        async def post_one(request: Request) -> Accepted:
            item = await run_in_threadpool(_validate, single, await request.body())
            return await send([item])

        async def post_batch(request: Request) -> Accepted:
            body = await request.body()
            # Count first: 100,000 "{}" items in 300 KB must not be validated one by one.
            n = await run_in_threadpool(_batch_count, body)
            if n == 0:
                raise RequestValidationError([{"loc": ["body"], "msg": "empty batch", "type": "too_short"}])
            if n is not None and n > max_batch:
                raise RequestValidationError(
                    [{"loc": ["body"], "msg": f"at most {max_batch} events per batch, got {n}", "type": "too_long"}]
                )
            items = await run_in_threadpool(_validate, batch, body)
            return await send(items, batch=True)

        name = path.replace("/", "_")
        router.add_api_route(
            f"/{path}", post_one, methods=["POST"], status_code=202, response_model=Accepted,
            openapi_extra=openapi_single, responses=responses, name=f"post_{name}",
            summary=f"Publish one {record_type.__name__} to {topic}",
        )
        router.add_api_route(
            f"/{path}/batch", post_batch, methods=["POST"], status_code=202, response_model=Accepted,
            openapi_extra=openapi_batch, responses=responses, name=f"post_{name}_batch",
            summary=f"Publish up to {max_batch} {record_type.__name__} events to {topic}",
        )

    for path, topic, record_type, key_of in _ENDPOINTS:
        add(path, topic, record_type, key_of)
    return router


def create_ingest_app(settings: Settings, host: str | None = None) -> FastAPI:
    """The ingest service: router + an idempotent Kafka producer started in the lifespan.
    Raises ExposureError for a non-loopback `host` (default settings.dashboard_host) without
    a token."""
    from producers.kafka import make_producer

    check_exposure(host or settings.dashboard_host, settings.dashboard_token, "the ingest API")

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(settings)
        await producer.start()
        state["producer"] = producer
        try:
            yield
        finally:
            await producer.stop()

    async def publish(topic: str, key: str, value: bytes) -> None:
        producer = state.get("producer")
        if producer is None:
            raise RuntimeError("producer not started")
        await producer.send_and_wait(topic, value=value, key=key.encode())

    app = FastAPI(
        title="Backroom ingest",
        version="1",
        description="POS/ERP events into Backroom's Kafka topics. Bearer token when configured.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(ingest_router(settings, publish))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok" if "producer" in state else "starting"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE, headers={"cache-control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    return app


# Swagger UI from producers/static/swagger-ui (vendored swagger-ui-dist, Apache-2.0); the page's
# own script is a file too, so the CSP needs no 'unsafe-inline'.
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backroom ingest - API docs</title>
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="/static/swagger-ui/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>
"""


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the ingest API with uvicorn; exits with a message instead of binding beyond loopback
    without a token."""
    import uvicorn

    from backroom.exposure import ExposureError

    host = host or settings.dashboard_host
    port = port or settings.dashboard_port + 1
    try:
        app = create_ingest_app(settings, host)
    except ExposureError as exc:
        raise SystemExit(str(exc)) from None
    shown = f"[{host}]" if ":" in host else host
    print(f"ingest API on http://{shown}:{port} (docs at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
