"""The worker's producer partitioner: Kafka's default partitioning with each key's hash kept.

    App(..., producer_partitioner=KeyPartitioner())   # streams/app.py:worker_app

Only aiokafka's public partitioner API is used here.
"""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2


class KeyPartitioner:
    """Kafka's default partitioning of keyed records (murmur2, as aiokafka's `DefaultPartitioner`
    and the Java client), with each key's hash remembered.

    aiokafka's murmur2 is pure Python, ~9 µs a key, and the worker sends two or three keyed
    records per event (the changelog value, `inventory.state`, alerts): ~10 % of its time at
    100k keys. Hashes are kept for up to `size` keys (~100 bytes each), then forgotten at once,
    so memory stays bounded whatever the key count; the partition is the same either way."""

    def __init__(self, size: int = 1 << 18) -> None:
        self.size = size
        self._hashes: dict[bytes, int] = {}
        self._unkeyed = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return self._unkeyed(key, all_partitions, available)  # type: ignore[no-any-return]
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self.size:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]
