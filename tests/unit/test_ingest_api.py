"""Ingest API through httpx's ASGI transport with a fake publish (no broker).

    pytest tests/unit/test_ingest_api.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from backroom.settings import Settings
from producers.ingest_api import create_ingest_app, ingest_router

BASE = "http://127.0.0.1:8001"  # a loopback Host: without a token the API refuses any other

SALE = {"event_id": "t1-1", "ts": "2026-11-27T09:15:00Z", "store_id": "S001", "sku": "MILK-1L", "qty": 2}
SCAN = {"event_id": "s1", "ts": "2026-11-27T09:15:00+01:00", "store_id": "S001", "sku": "MILK-1L",
        "kind": "move_to_shelf", "qty": 12, "location": "shelf"}
FRAME = {"event_id": "f1", "ts": "2026-11-27T09:15:00Z", "store_id": "S001", "camera_id": "cam-1",
         "frame_uri": "file:///frames/cam-1/0001.jpg", "width": 640, "height": 480}
SKU = {"sku": "MILK-1L", "name": "Milk 1 l", "category": "Dairy", "shelf_capacity": 36,
       "min_shelf_qty": 8, "lead_time_hours": 48.0, "case_pack": 12}
PLANOGRAM = {"store_id": "S001", "camera_id": "cam-1",
             "slots": [{"sku": "MILK-1L", "box": [0.0, 0.0, 0.5, 0.5], "facings": 4}]}


class FakePublish:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    async def __call__(self, topic: str, key: str, value: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, key, orjson.loads(value)))


@pytest.fixture
def make_client(settings_factory: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    def make(publish: FakePublish | None = None, **overrides: Any) -> tuple[httpx.AsyncClient, FakePublish]:
        settings = settings_factory(topic_prefix="p.", **overrides)
        pub = publish or FakePublish()
        app = FastAPI()
        app.include_router(ingest_router(settings, pub))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        return client, pub

    return make


@pytest.mark.parametrize(
    ("path", "body", "topic", "key"),
    [
        ("sales", SALE, "p.pos.sales", "S001:MILK-1L"),
        ("scans", SCAN, "p.backroom.scans", "S001:MILK-1L"),
        ("frames", FRAME, "p.camera.frames", "S001:cam-1"),
        ("catalog/skus", SKU, "p.catalog.skus", "*:MILK-1L"),
        ("catalog/skus", {**SKU, "store_id": "S002"}, "p.catalog.skus", "S002:MILK-1L"),
        ("planograms", PLANOGRAM, "p.catalog.planograms", "S001:cam-1"),
    ],
)
async def test_single_event_is_published_with_contract_key(make_client, path, body, topic, key) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    async with client:
        r = await client.post(f"/api/v1/{path}", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    assert [(t, k) for t, k, _ in pub.sent] == [(topic, key)]
    value = pub.sent[0][2]
    assert "store_id" not in value if path == "catalog/skus" else value["store_id"] == "S001"


async def test_timestamps_are_normalised_to_utc(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    async with client:
        await client.post("/api/v1/scans", json=SCAN)
    assert pub.sent[0][2]["ts"] == "2026-11-27T08:15:00Z"


async def test_batch_keeps_order_per_key(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    events = [{**SALE, "event_id": f"e{i}", "sku": "A" if i % 2 else "B", "qty": i + 1} for i in range(10)]
    async with client:
        r = await client.post("/api/v1/sales/batch", json=events)
    assert r.status_code == 202
    assert r.json()["accepted"] == 10
    for sku in "AB":
        ids = [v["event_id"] for _, k, v in pub.sent if k == f"S001:{sku}"]
        assert ids == [e["event_id"] for e in events if e["sku"] == sku]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("sales", {**SALE, "qty": 0}, ["body", "qty"]),
        ("sales", {**SALE, "qty": "2"}, ["body", "qty"]),  # strict: a string is not a quantity
        ("sales", {**SALE, "ts": "2026-11-27T09:15:00"}, ["body", "ts"]),  # naive timestamp
        ("sales", {**SALE, "ts": "1970-01-01T00:00:00Z"}, ["body", "ts"]),
        ("sales", {k: v for k, v in SALE.items() if k != "sku"}, ["body", "sku"]),
        ("sales", {**SALE, "store_id": "Store #1"}, ["body", "store_id"]),
        ("scans", {**SCAN, "kind": "teleport"}, ["body", "kind"]),
        ("scans", {**SCAN, "qty": 0}, ["body"]),  # model-level rule: qty must fit the kind
        ("frames", {**FRAME, "width": 0}, ["body", "width"]),
        ("catalog/skus", {**SKU, "shelf_capacity": 0}, ["body", "shelf_capacity"]),
        ("planograms", {**PLANOGRAM, "slots": [{"sku": "A", "box": [0.5, 0, 0.2, 1], "facings": 1}]},
         ["body", "slots", 0]),
    ],
)
async def test_invalid_event_is_422_with_field_message(make_client, path, body, field) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    async with client:
        r = await client.post(f"/api/v1/{path}", json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"] == field and e["msg"] for e in errors), errors
    assert pub.sent == []


async def test_batch_with_one_bad_event_publishes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    events = [SALE, {**SALE, "event_id": "x", "qty": -1}]
    async with client:
        r = await client.post("/api/v1/sales/batch", json=events)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", 1, "qty"]
    assert pub.sent == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b"null", b'"text"', b"\xff\xfe"])
async def test_malformed_bodies_are_4xx_never_500(make_client, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client()
    async with client:
        for path in ("/api/v1/sales", "/api/v1/sales/batch", "/api/v1/planograms"):
            r = await client.post(path, content=raw, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (path, raw, r.status_code, r.text)


async def test_batch_limit(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client(ingest_max_batch=3)
    async with client:
        r = await client.post("/api/v1/sales/batch", json=[{**SALE, "event_id": f"e{i}"} for i in range(4)])
    assert r.status_code == 422
    assert "at most 3" in r.json()["detail"][0]["msg"]
    assert pub.sent == []


async def test_body_size_limit_is_413(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client(ingest_max_body_bytes=2048)
    big = [{**SALE, "event_id": f"e{i}"} for i in range(100)]
    async with client:
        r = await client.post("/api/v1/sales/batch", json=big)
        assert r.status_code == 413

        # A chunked upload without Content-Length is cut off while streaming.
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b" " * 1000

        r2 = await client.post("/api/v1/sales", content=chunks(), headers={"content-type": "application/json"})
        assert r2.status_code == 413
    assert pub.sent == []


async def test_token_required_when_configured(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client(dashboard_token="s3cret")
    async with client:
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 401
        wrong = await client.post("/api/v1/sales", json=SALE, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # 401 comes before validation: an unauthenticated caller learns nothing about the schema.
        bad = await client.post("/api/v1/sales", json={"qty": 0})
        assert bad.status_code == 401
        ok = await client.post("/api/v1/sales", json=SALE, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 202
    assert len(pub.sent) == 1


async def test_broker_failure_is_503(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(publish=FakePublish(fail=True))
    async with client:
        r = await client.post("/api/v1/sales", json=SALE)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"


async def test_openapi_documents_every_endpoint(settings_factory) -> None:  # type: ignore[no-untyped-def]
    app = create_ingest_app(settings_factory())  # no broker I/O until the lifespan starts
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        spec = (await c.get("/openapi.json")).json()
    for path in ("sales", "scans", "frames", "catalog/skus", "planograms"):
        assert f"/api/v1/{path}" in spec["paths"]
        assert f"/api/v1/{path}/batch" in spec["paths"]
    body = spec["paths"]["/api/v1/sales"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "qty" in body["properties"]



# --- hardening (issue 21) ---------------------------------------------------------------------


def test_ingest_refuses_to_bind_beyond_loopback_without_a_token(settings_factory) -> None:  # type: ignore[no-untyped-def]
    from backroom.exposure import ExposureError
    from producers.ingest_api import serve

    wide = settings_factory(dashboard_host="0.0.0.0")
    with pytest.raises(ExposureError, match=r"ingest API on 0\.0\.0\.0 without a token"):
        create_ingest_app(wide)
    with pytest.raises(SystemExit, match="BACKROOM_DASHBOARD_TOKEN"):
        serve(settings_factory(), host="0.0.0.0", port=1)
    with pytest.raises(SystemExit, match="BACKROOM_DASHBOARD_TOKEN"):  # empty means unset
        serve(settings_factory(dashboard_token=""), host="10.0.0.5", port=1)
    create_ingest_app(settings_factory(dashboard_host="0.0.0.0", dashboard_token="t"))


async def test_cross_site_posts_are_refused(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    body = orjson.dumps(SALE)
    async with client:
        # The probe's cross-site simple POST: text/plain, a foreign Origin and Host.
        r = await client.post("/api/v1/sales", content=body, headers={
            "content-type": "text/plain", "origin": "http://evil.example", "host": "evil.example"})
        assert r.status_code == 403 and "Host" in r.json()["detail"]
        r = await client.post("/api/v1/sales", content=body, headers={
            "content-type": "application/json", "origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"content-type": ctype} if ctype else {}
            r = await client.post("/api/v1/sales", content=body, headers=headers)
            assert r.status_code == 415, (ctype, r.text)
            assert "application/json" in r.json()["detail"]
        same = await client.post("/api/v1/sales", content=body, headers={
            "content-type": "application/json; charset=utf-8", "origin": BASE})
        assert same.status_code == 202, same.text
    assert len(pub.sent) == 1


async def test_empty_token_is_unset_and_keeps_the_host_check(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client(dashboard_token="")
    async with client:
        r = await client.post("/api/v1/sales", json=SALE, headers={"host": "rebound.example"})
        assert r.status_code == 403
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 202
    # With a real token the API may sit behind any host name.
    client, _ = make_client(dashboard_token="tok")
    async with client:
        r = await client.post("/api/v1/sales", json=SALE, headers={"host": "ingest.example",
                                                                   "authorization": "Bearer tok"})
        assert r.status_code == 202


async def test_batch_count_is_checked_before_items_are_validated(make_client) -> None:  # type: ignore[no-untyped-def]
    import time

    client, pub = make_client()
    body = b"[" + b",".join([b"{}"] * 100_000) + b"]"  # 300 KB: under the body limit
    async with client:
        started = time.perf_counter()
        r = await client.post("/api/v1/sales/batch", content=body, headers={"content-type": "application/json"})
        took = time.perf_counter() - started
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "at most 1000 events per batch, got 100000"
    assert len(r.content) < 1000 and took < 2, (len(r.content), took)
    assert pub.sent == []


async def test_error_list_is_capped(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client()
    async with client:
        r = await client.post("/api/v1/sales/batch", json=[{**SALE, "qty": 0, "sku": "bad sku"}] * 50)
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(detail) == 21
    assert detail[-1]["type"] == "too_many_errors" and "100 errors" in detail[-1]["msg"]


async def test_validation_runs_off_the_event_loop(make_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    import producers.ingest_api as ingest

    threads: list[str] = []
    real = ingest._validate

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(ingest, "_validate", spy)
    client, _ = make_client()
    async with client:
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 202
        assert (await client.post("/api/v1/sales/batch", json=[SALE])).status_code == 202
    assert len(threads) == 2 and threading.main_thread().name not in threads


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("sales", b'{"event_id":"p","ts":"2026-11-27T09:15:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":1e309}',
         ["body", "unit_price"]),
        ("sales", b'{"event_id":"p","ts":"2026-11-27T09:15:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":Infinity}',
         ["body", "unit_price"]),
        ("sales", b'{"event_id":"p","ts":"2026-11-27T09:15:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":NaN}',
         ["body", "unit_price"]),
        ("catalog/skus", orjson.dumps({**SKU, "shelf_capacity": 10, "min_shelf_qty": 12}), ["body"]),
    ],
)
async def test_values_that_slipped_through_are_refused(make_client, path, raw, field) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    async with client:
        r = await client.post(f"/api/v1/{path}", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(e["loc"] == field and e["msg"] for e in r.json()["detail"]), r.text
    assert pub.sent == []


async def test_far_future_events_are_refused_against_the_apis_own_event_time(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    future = {**SALE, "event_id": "f", "ts": "2100-12-31T00:00:00Z"}
    async with client:
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 202
        r = await client.post("/api/v1/sales", json=future)
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "ts"] and err["msg"].startswith("far-future ts: 2100-12-31T00:00:00Z")
        r = await client.post("/api/v1/sales/batch", json=[{**SALE, "event_id": "g"}, future])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "ts"]
        ok = await client.post("/api/v1/scans", json={**SCAN, "ts": "2026-11-28T08:00:00Z"})
        assert ok.status_code == 202
    assert [v["event_id"] for _, _, v in pub.sent] == ["t1-1", "s1"]
    # An API that has seen nothing yet has nothing to compare with: it accepts.
    fresh, _ = make_client()
    async with fresh:
        assert (await fresh.post("/api/v1/sales", json=future)).status_code == 202


async def test_docs_are_served_locally_with_a_csp(settings_factory) -> None:  # type: ignore[no-untyped-def]
    app = create_ingest_app(settings_factory())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        docs = await c.get("/docs")
        assert docs.status_code == 200
        assert "cdn" not in docs.text and "https://" not in docs.text
        assert "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
        js = await c.get("/static/swagger-ui/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000
        assert (await c.get("/static/swagger-ui/LICENSE")).status_code == 200
        for r in (docs, js, await c.get("/openapi.json"), await c.post("/api/v1/sales", json={"qty": 0}),
                  await c.get("/healthz")):
            csp = r.headers.get("content-security-policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, r.url
            assert r.headers["x-content-type-options"] == "nosniff"
        assert "cdn" not in (await c.get("/redoc")).text


async def test_a_real_jump_in_event_time_gets_through(make_client) -> None:  # type: ignore[no-untyped-def]
    client, pub = make_client()
    monday = "2026-11-30T08:00:00Z"  # the store was closed for 71 h
    async with client:
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 202
        # One request with two SKUs agreeing on the new time: accepted as a whole.
        batch = [{**SALE, "event_id": "m1", "ts": monday}, {**SALE, "event_id": "m2", "sku": "BREAD", "ts": monday}]
        r = await client.post("/api/v1/sales/batch", json=batch)
        assert r.status_code == 202, r.text
    # One by one: the first is refused, a second SKU confirms, the first's retry passes.
    client, pub = make_client()
    async with client:
        assert (await client.post("/api/v1/sales", json=SALE)).status_code == 202
        first = {**SALE, "event_id": "m1", "ts": monday}
        assert (await client.post("/api/v1/sales", json=first)).status_code == 422
        other = {**SALE, "event_id": "m2", "sku": "BREAD", "ts": "2026-11-30T08:05:00Z"}
        assert (await client.post("/api/v1/sales", json=other)).status_code == 202
        assert (await client.post("/api/v1/sales", json=first)).status_code == 202
    assert [v["event_id"] for _, _, v in pub.sent] == ["t1-1", "m2", "m1"]
