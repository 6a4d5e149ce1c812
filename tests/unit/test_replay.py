"""`producers.replay` with a fake send (no broker): order, keys, values, pacing.

    pytest tests/unit/test_replay.py
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from backroom.cleaning import clean
from backroom.records import Sale, Scan, decode
from backroom.settings import Settings
from producers.replay import ReplayError, replay

RAW = Path(__file__).resolve().parents[2] / "data" / "raw"


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("processed")
    return {
        name: Path(clean(RAW / f"{name}.csv", out, fmt, tz="Europe/Berlin").outputs["data"])  # type: ignore[arg-type]
        for name, fmt in (("sales", "parquet"), ("scans", "csv"), ("products", "parquet"))
    }


async def test_replay_merges_by_event_time_catalog_first(processed: dict[str, Path], settings: Settings) -> None:
    sent: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]

    async def send(topic: str, key: str, value: bytes) -> None:
        sent.append((topic, key, orjson.loads(value)))

    s = settings.model_copy(update={"topic_prefix": "x."})
    stats = await replay([processed["sales"], processed["scans"], processed["products"]], s, 0, send=send)
    topics = [t for t, _, _ in sent]
    n_cat = topics.count("x.catalog.skus")
    assert n_cat == 8 and set(topics[:n_cat]) == {"x.catalog.skus"}
    assert stats.produced == {"catalog.skus": 8, "pos.sales": 12, "backroom.scans": 11}
    stamps = [v["ts"] for t, _, v in sent if t != "x.catalog.skus"]
    assert stamps == sorted(stamps)  # same ISO format, so string order = time order
    for topic, key, value in sent:
        if topic == "x.pos.sales":
            decode(Sale, orjson.dumps(value))
            assert key == f"{value['store_id']}:{value['sku']}"
        elif topic == "x.backroom.scans":
            decode(Scan, orjson.dumps(value))
    assert ("x.catalog.skus", "*:MILK-1L") in [(t, k) for t, k, _ in sent]
    assert ("x.catalog.skus", "S002:MILK-1L") in [(t, k) for t, k, _ in sent]


async def test_speed_paces_by_event_time(processed: dict[str, Path], settings: Settings) -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    async def send(topic: str, key: str, value: bytes) -> None:
        return None

    await replay([processed["sales"]], settings, 3600, send=send, sleep=fake_sleep)
    # The sales span 07:02 -> 12:02 event time = 5 h; at 3600x the last event is due after
    # ~5 s. The fake sleep does not advance the clock, so each wait is the full offset.
    assert max(slept) == pytest.approx(5.0, abs=0.1)
    assert slept == sorted(slept)


async def test_replay_rejects_unknown_files(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")

    async def send(topic: str, key: str, value: bytes) -> None:
        return None

    with pytest.raises(ReplayError):
        await replay([tmp_path / "x.csv"], settings, 0, send=send)
    with pytest.raises(ReplayError):
        await replay([tmp_path / "missing.parquet"], settings, 0, send=send)
