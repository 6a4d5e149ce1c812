"""Shared fixtures: settings factories, the real embedded Kafka broker, worker subprocesses.

    pytest tests/unit                 # no broker needed
    pytest tests/integration          # starts one real KRaft broker for the session

The broker runs on free ports under a temporary data dir and is stopped at the end of the
session even when tests fail. Each broker test gets its own topic prefix and app id, so tests
never see each other's events.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backroom.settings import Settings
from tests.helpers import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated from the environment and .env, with a temporary data dir."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "partitions": 2}
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


# --- the real broker ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real single-node Kafka for the test session; yields its bootstrap address."""
    from broker.embedded import EmbeddedBroker

    external = os.environ.get("BACKROOM_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    port = free_port()
    controller = free_port()
    data = tmp_path_factory.mktemp("kafka")
    broker_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data, broker_port=port, broker_controller_port=controller, partitions=2,
        broker_heap_mb=512,
    )
    broker = EmbeddedBroker(broker_settings)
    broker.start(timeout_s=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_broker: str, settings_factory: Callable[..., Settings]) -> Settings:
    """Settings on the session broker with a unique topic prefix and app id for this test."""
    tag = uuid.uuid4().hex[:8]
    return settings_factory(
        kafka_bootstrap=kafka_broker, topic_prefix=f"t{tag}.", app_id=f"backroom-{tag}",
        batch_within_s=0.01,
    )


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(settings: Settings) -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


