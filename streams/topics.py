"""Contract topics and their creation: `backroom topics` creates them (idempotent).

Every co-partitioned topic gets `settings.partitions` partitions, so one store×SKU key lands on
the same partition number everywhere (Kafka's default murmur2 partitioner on the same key).
"""

from __future__ import annotations

import asyncio
import logging

from backroom.records import COMPACTED_TOPICS, TOPIC_RECORDS
from backroom.settings import Settings

log = logging.getLogger(__name__)

CONTRACT_TOPICS = tuple(TOPIC_RECORDS)
# The worker's own re-keyed copies (streams/transfers.py): inventory.state keyed by sku.
REPARTITION_TOPICS = ("inventory.by-sku",)


def topic_configs(name: str) -> dict[str, str]:
    if name in COMPACTED_TOPICS:
        return {"cleanup.policy": "compact"}
    return {}


# The worker's table changelogs (Faust names them "<app_id>-<table>-changelog") with their
# partition counts; created up front because a topic created during the first group join is
# skipped by that assignment.
CHANGELOG_TABLES = {"inventory": None, "alert-books": None, "catalog": 1, "planograms": None,
                    "stores": 1, "transfer-boards": None}


def changelog_topics(settings: Settings) -> dict[str, int]:
    return {
        f"{settings.app_id}-{table}-changelog": parts or settings.partitions
        for table, parts in CHANGELOG_TABLES.items()
    }


async def ensure_topics(
    settings: Settings, names: tuple[str, ...] = CONTRACT_TOPICS + REPARTITION_TOPICS, changelogs: bool = True
) -> list[str]:
    """Create the missing contract and repartition topics (and table changelogs); returns the
    names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(name),
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=topic_configs(name),
            )
            for name in names
            if settings.topic(name) not in existing
        ]
        if changelogs:
            wanted += [
                NewTopic(name=name, num_partitions=parts,
                         replication_factor=settings.replication_factor,
                         topic_configs={"cleanup.policy": "compact"})
                for name, parts in changelog_topics(settings).items()
                if name not in existing
            ]
        if wanted:
            await admin.create_topics(wanted)
        # Metadata propagates asynchronously. A Faust worker that joins before every partition
        # has a leader leaves the missing topics out of its assignment (its agents would never
        # see them), so wait until each partition of every topic we need has a leader.
        names_needed = [settings.topic(n) for n in names]
        if changelogs:
            names_needed += list(changelog_topics(settings))
        await _wait_for_leaders(admin, names_needed)
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: object, names: list[str], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            described = await admin.describe_topics(names)  # type: ignore[attr-defined]
            ready = all(
                t["error_code"] == 0 and t["partitions"]
                and all(p["leader"] is not None and p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
        except Exception:  # a topic still unknown to the broker answering: try again
            ready = False
        if ready or asyncio.get_running_loop().time() > deadline:
            if not ready:
                log.warning("some topics still have no leader after %.0fs: %s", timeout_s, names)
            return
        await asyncio.sleep(0.2)


async def delete_run_topics(settings: Settings) -> list[str]:
    """Delete the topics of one benchmark run: its topic prefix (which must be set, so a
    production prefix of "" is never swept) and its app id's changelogs and Faust internals.

    A 30-minute soak leaves ~17 GB of changelog on the broker: the benchmarks remove what
    they created unless told to keep it (`--keep-topics`)."""
    from aiokafka.admin import AIOKafkaAdminClient

    prefix, app_id = settings.topic_prefix, settings.app_id
    if not prefix:
        raise ValueError("refusing to delete topics without a run-specific topic prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix) or t.startswith(f"{app_id}-")]
        if names:
            await admin.delete_topics(names)
        return sorted(names)
    finally:
        await admin.close()
