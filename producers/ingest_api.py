"""HTTP ingest for POS and ERP systems: validated events into the contract topics.

Run: `backroom ingest` (serves on 127.0.0.1:<dashboard_port + 1>; docs at /docs), e.g.

    curl -X POST localhost:8001/api/v1/sales -H 'Content-Type: application/json' \\
         -H "Authorization: Bearer $BACKROOM_DASHBOARD_TOKEN" \\
         -d '{"event_id":"t1-1","ts":"2026-11-27T09:15:00Z","store_id":"S001","sku":"MILK-1L","qty":2}'

Endpoints (single event, or a JSON array of up to `settings.ingest_max_batch` on `/batch`):
`/api/v1/sales`, `/api/v1/scans`, `/api/v1/frames`, `/api/v1/catalog/skus`, `/api/v1/planograms`,
`/api/v1/alerts/feedback` (false-alarm feedback, docs/floor.md).
Answers: 202 accepted; 401 without the bearer token when `dashboard_token` is set; 413 over
`ingest_max_body_bytes`; 422 with one entry per bad field (`loc`, `msg`) for invalid events, and
for a batch nothing is published unless every event is valid; 503 when Kafka does not take them.

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
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

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

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if not token_ok(settings, request.headers.get("authorization")):
                    return _unauthorized()
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


def _errors(exc: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic errors as JSON-safe field messages: loc, msg, type (no input echo, no ctx objects)."""
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def ingest_router(settings: Settings, publish: Publish) -> APIRouter:
    """POST endpoints for every inbound contract topic, single and batch."""
    router = APIRouter(prefix="/api/v1", tags=["ingest"], route_class=_guarded_route(settings))
    max_batch = settings.ingest_max_batch

    def add(path: str, topic: str, record_type: type[Record], key_of: Callable[[Any], str]) -> None:
        single = TypeAdapter(record_type)
        batch = TypeAdapter(list[record_type])  # type: ignore[valid-type]
        full_topic = settings.topic(topic)

        async def send(items: list[Any]) -> Accepted:
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
            # Validated from the raw JSON in strict JSON mode: ISO strings become datetimes,
            # but "3" is not a quantity (the same rules as `records.decode`).
            try:
                item = single.validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(_errors(exc)) from None
            return await send([item])

        async def post_batch(request: Request) -> Accepted:
            try:
                items = batch.validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(_errors(exc)) from None
            if not items:
                raise RequestValidationError([{"loc": ["body"], "msg": "empty batch", "type": "too_short"}])
            if len(items) > max_batch:
                raise RequestValidationError(
                    [{"loc": ["body"], "msg": f"at most {max_batch} events per batch, got {len(items)}", "type": "too_long"}]
                )
            return await send(items)

        name = path.replace("/", "_")
        router.add_api_route(
            f"/{path}", post_one, methods=["POST"], status_code=202, response_model=Accepted,
            openapi_extra=openapi_single, responses=responses, name=f"post_{name}",
            summary=f"Publish one {record_type.__name__} to {topic}",
        )  # fmt: skip
        router.add_api_route(
            f"/{path}/batch", post_batch, methods=["POST"], status_code=202, response_model=Accepted,
            openapi_extra=openapi_batch, responses=responses, name=f"post_{name}_batch",
            summary=f"Publish up to {max_batch} {record_type.__name__} events to {topic}",
        )  # fmt: skip

    for path, topic, record_type, key_of in _ENDPOINTS:
        add(path, topic, record_type, key_of)
    return router


def create_ingest_app(settings: Settings) -> FastAPI:
    """The ingest service: router + an idempotent Kafka producer started in the lifespan."""
    from producers.kafka import make_producer

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
    )
    app.include_router(ingest_router(settings, publish))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok" if "producer" in state else "starting"}

    return app
