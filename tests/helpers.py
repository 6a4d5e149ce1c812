"""Helpers for broker tests: produce, consume until a condition, run a worker subprocess.

    from tests.helpers import produce, consume_until, WorkerProcess
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from backroom.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess see exactly these settings."""
    return settings.subprocess_env()


class WorkerProcess:
    """`backroom worker` as a subprocess, as a deployment runs it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--loglevel", "info"],
            env=settings_env(self.settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until Faust says the worker recovered its tables and started its agents."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Worker ready" in self.log_path.read_text(errors="replace"):
                return
            if not self.alive:
                raise RuntimeError(f"worker exited:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


async def produce(settings: Settings, messages: list[tuple[str, str | None, Any]]) -> None:
    """Produce (topic, key, value) where value is a dict, a Record, raw bytes or str."""
    from producers.kafka import make_producer

    producer = make_producer(settings)
    await producer.start()
    try:
        for topic, key, value in messages:
            if isinstance(value, dict):
                raw: bytes | None = orjson.dumps(value)
            elif isinstance(value, str):
                raw = value.encode()
            elif hasattr(value, "to_json"):
                raw = value.to_json()
            else:
                raw = value
            await producer.send(settings.topic(topic), key=key.encode() if key else None, value=raw)
        await producer.flush()
    finally:
        await producer.stop()


async def consume_until(
    settings: Settings, topic: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `done(records)` holds or the time runs out."""
    from producers.kafka import make_consumer

    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(records):
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                for r in recs:
                    records.append(orjson.loads(r.value))
    finally:
        await consumer.stop()
    return records


def run(coro: Any) -> Any:
    return asyncio.run(coro)
