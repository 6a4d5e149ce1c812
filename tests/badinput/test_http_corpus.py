"""Bad input over HTTP: the ingest API answers 4xx with a message (never 5xx) to malformed
requests, and the valid requests between them reach the worker.

    pytest tests/badinput/test_http_corpus.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
import pytest

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.conftest import free_port
from tests.factories import catalog_entry, sale, scan
from tests.helpers import ROOT, consume_until, settings_env

pytestmark = pytest.mark.integration

# (name, path, body bytes, expected status[, extra request headers])
HTTP_CASES: list[tuple[Any, ...]] = [
    ("invalid json", "sales", b"{\"event_id\": ", 422),
    ("array for a single event", "sales", b"[1, 2]", 422),
    ("qty as string", "sales", orjson.dumps(sale("H1", "X", qty="3")), 422),
    ("qty zero", "sales", orjson.dumps(sale("H1", "X", qty=0)), 422),
    ("qty huge", "sales", orjson.dumps(sale("H1", "X", qty=10**12)), 422),
    ("missing sku", "sales", orjson.dumps({k: v for k, v in sale("H1", "X").items() if k != "sku"}), 422),
    ("naive ts", "sales", orjson.dumps(sale("H1", "X", ts="2026-11-27T09:00:00")), 422),
    ("far-future ts", "sales", orjson.dumps(sale("H1", "X", ts="2999-01-01T00:00:00Z")), 422),
    ("control chars in sku", "sales", orjson.dumps(sale("H1", "X\u0000")), 422),
    ("unknown scan kind", "scans", orjson.dumps(scan("teleport", 1, "H1", "X")), 422),
    ("empty batch", "sales/batch", b"[]", 422),
    ("oversized body", "sales/batch", orjson.dumps([sale("H1", "X", note="y" * 2000) for _ in range(800)]), 413),
    ("unknown endpoint", "returns", b"{}", 404),
    ("catalog zero capacity", "catalog/skus", orjson.dumps(catalog_entry("X", shelf_capacity=0)), 422),
    ("planogram box outside the frame", "planograms",
     orjson.dumps({"store_id": "H1", "camera_id": "c1", "slots": [{"sku": "X", "box": [0, 0, 2, 1], "facings": 1}]}), 422),
    # Issue 21's probes.
    ("cross-site simple POST", "sales", orjson.dumps(sale("H1", "X")), 403,
     {"content-type": "text/plain", "origin": "http://evil.example", "host": "evil.example"}),
    ("rebinding Host", "sales", orjson.dumps(sale("H1", "X")), 403, {"host": "evil.example:8001"}),
    ("foreign Origin", "sales", orjson.dumps(sale("H1", "X")), 403, {"origin": "http://evil.example"}),
    ("text/plain body", "sales", orjson.dumps(sale("H1", "X")), 415, {"content-type": "text/plain"}),
    ("form body", "sales", b"qty=1", 415, {"content-type": "application/x-www-form-urlencoded"}),
    ("100,000 empty items", "sales/batch", b"[" + b",".join([b"{}"] * 100_000) + b"]", 422),
    ("price 1e309", "sales", orjson.dumps(sale("H1", "X")).replace(b'"qty"', b'"unit_price":1e309,"qty"'), 422),
    ("price Infinity", "sales", orjson.dumps(sale("H1", "X")).replace(b'"qty"', b'"unit_price":Infinity,"qty"'), 422),
    ("price NaN", "sales", orjson.dumps(sale("H1", "X")).replace(b'"qty"', b'"unit_price":NaN,"qty"'), 422),
    ("sale 74 years ahead", "sales", orjson.dumps(sale("H1", "X", ts="2100-12-31T00:00:00Z")), 422),
    ("catalog min above capacity", "catalog/skus",
     orjson.dumps(catalog_entry("X", shelf_capacity=10, min_shelf_qty=12)), 422),
]


def test_http_bad_requests_get_4xx_and_valid_ones_flow(kafka_settings: Settings, worker_factory: Any) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    worker_factory(kafka_settings)
    port = free_port()
    settings = kafka_settings.model_copy(update={"ingest_max_body_bytes": 1_000_000})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest", "--port", str(port)],
        env=settings_env(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        with httpx.Client(timeout=10) as client:
            for _ in range(100):
                try:
                    client.get(f"http://127.0.0.1:{port}/openapi.json")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            ok = client.post(f"{base}/scans", content=orjson.dumps(scan("receive", 50, "H1", "X")),
                             headers={"content-type": "application/json"})
            assert ok.status_code == 202, ok.text
            valid = 0
            for name, path, body, status, *extra in HTTP_CASES:
                headers = {"content-type": "application/json", **(extra[0] if extra else {})}
                r = client.post(f"{base}/{path}", content=body, headers=headers)
                assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
                assert len(r.content) < 5000, f"{name}: {len(r.content)} bytes of errors"
                assert r.headers["content-type"].startswith("application/json"), name
                assert r.json().get("detail"), f"{name}: no message"
                good = client.post(f"{base}/sales", content=orjson.dumps(sale("H1", "X", minutes=1)),
                                   headers={"content-type": "application/json"})
                assert good.status_code == 202, good.text
                valid += 1
        want = 1 + valid

        states = asyncio.run(consume_until(
            kafka_settings, "inventory.state",
            lambda ss: any(s["sku"] == "X" and s["version"] == want for s in ss), timeout_s=60,
        ))
        final = max((s for s in states if s["sku"] == "X"), key=lambda s: s["version"])
        assert final["version"] == want and final["backroom_qty"] == 50
    finally:
        proc.terminate()
        proc.wait(timeout=20)
