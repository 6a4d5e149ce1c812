"""Bad input to the dashboard over real sockets: every probe gets a clean 4xx or close, one log
line at most, and the server keeps serving. No broker needed (the app runs with kafka=False).

    pytest tests/badinput/test_dashboard_corpus.py
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from backroom.settings import Settings
from dashboard.server import create_app
from tests.conftest import free_port

TOKEN = "s3cret"
IMPOSSIBLE_DATES = ["2026-13-45", "2026-02-29", "2026-11-31"]


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings, kafka=False), host="127.0.0.1", port=port,
                            log_config=None, log_level="info", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def raw_request(addr: str, request: bytes) -> bytes:
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def probe_open_redirect(addr: str) -> None:
    r = httpx.get(f"http://{addr}//evil.example/x", params={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/evil.example/x"


def probe_crlf_path(addr: str) -> None:
    reply = raw_request(addr, f"GET /%0d%0aSet-Cookie:%20x=1?token={TOKEN} HTTP/1.1\r\n"
                              f"Host: {addr}\r\nConnection: close\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"set-cookie: x" not in head.lower() and b"control characters" in body


def probe_binary_frames(addr: str) -> None:
    async def run() -> int | None:
        async with websockets.connect(f"ws://{addr}/ws?token={TOKEN}") as ws:
            await ws.recv()  # the snapshot
            await ws.send(b"\x00\x01\x02")
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    assert asyncio.run(run()) == 1003


def probe_ask_dates(addr: str) -> None:
    for day in IMPOSSIBLE_DATES:
        r = httpx.get(f"http://{addr}/api/ask", params={"q": f"top sellers on {day}"},
                      headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 400 and "is not a date" in r.json()["detail"], (day, r.text)


PROBES: list[tuple[str, Callable[[str], None]]] = [
    ("open redirect //evil.example/x with ?token=", probe_open_redirect),
    ("%0d%0a in a path with ?token=", probe_crlf_path),
    ("binary websocket frame", probe_binary_frames),
    ("/api/ask with impossible dates", probe_ask_dates),
]


def test_dashboard_probes_get_clean_answers(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serving(settings_factory(dashboard_token=TOKEN)) as addr:
        for name, probe in PROBES:
            probe(addr)
            ok = httpx.get(f"http://{addr}/api/status", headers={"authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, f"after {name}: {ok.status_code}"
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks
    assert len([r for r in caplog.records if "binary frame" in r.getMessage()]) == 1


def test_empty_token_keeps_the_host_check(settings_factory: Callable[..., Settings]) -> None:
    with serving(settings_factory(dashboard_token="")) as addr:
        r = httpx.get(f"http://{addr}/api/status", headers={"host": "rebound.example"})
        assert r.status_code == 403 and r.json()["detail"] == "unexpected Host header"
        assert httpx.get(f"http://{addr}/api/status").status_code == 200


CASES: list[Any] = [name for name, _ in PROBES] + ["empty token with a rebinding Host"]
