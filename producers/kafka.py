"""Kafka producer/consumer factories shared by every producer and consumer (not the worker).

The only place clients are configured: the bootstrap address comes from `Settings`.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from backroom.records import Record
from backroom.settings import Settings


def make_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """acks=all + idempotence: a retried send is never written twice by the broker."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)  # type: ignore[arg-type]


def make_consumer(settings: Settings, *topics: str, **overrides: object) -> AIOKafkaConsumer:
    """Consumer of contract topics (names without prefix)."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*(settings.topic(t) for t in topics), **options)  # type: ignore[arg-type]


async def send_record(producer: AIOKafkaProducer, settings: Settings, topic: str, key: str,
                      record: Record) -> None:
    await producer.send(settings.topic(topic), key=key.encode(), value=record.to_json())
