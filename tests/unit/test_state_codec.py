"""The binary table value: a state and its demand model come back exactly as they were written."""

from __future__ import annotations

import random

import orjson
import pytest

from backroom.demand.forecast import SEASON, Forecaster
from backroom.demand.model_codec import ModelFormatError, decode_forecaster, encode_forecaster
from backroom.inventory import SkuState
from backroom.processing import InventoryProcessor
from backroom.settings import Settings
from backroom.state_codec import StateFormatError, decode_state, encode_state, value_version
from bench.processing import preload


def steady_state(settings: Settings) -> SkuState:
    """One key after the benchmarks' steady-state pre-load (a full dedup window, a model)."""
    inv = InventoryProcessor(settings)
    table: dict[str, bytes] = {}
    for msgs in preload(1, 64):
        table.update(inv.process(msgs, table.get, lambda _k: None).values)
    (value,) = table.values()
    return decode_state(value)


def test_a_steady_state_value_round_trips_exactly_and_is_compact(settings: Settings) -> None:
    state = steady_state(settings)
    assert state.demand.model is not None and len(state.seen) == 64
    blob = encode_state(state)
    back = decode_state(blob)
    assert encode_state(back) == blob
    assert back.to_dict() == state.to_dict()
    assert value_version(blob) == state.version == 64
    # The JSON of the same state (the table value format before, less its pickled model) is
    # ~1.55x the binary one.
    assert len(blob) < 0.7 * len(orjson.dumps(state.to_dict()))


def test_optional_fields_survive(settings: Settings) -> None:
    state = steady_state(settings)
    state.vision_fill, state.shelf_seen_max, state.last_event_id = 0.25, 3, "é" * 300
    state.demand.empty_since, state.demand.day_y = 1.5e9, 12.345
    back = decode_state(encode_state(state))
    assert (back.vision_fill, back.shelf_seen_max, back.last_event_id) == (0.25, 3, "é" * 300)
    assert (back.demand.empty_since, back.demand.day_y) == (1.5e9, 12.345)


def test_the_outlier_guard_and_a_weekprofile_zone_survive(settings: Settings) -> None:
    state = steady_state(settings)
    assert state.demand.selling > 0  # the pre-load's sales taught the guard
    state.demand.typical, state.demand.selling = 2.3026, 17
    back = decode_state(encode_state(state))
    assert (back.demand.typical, back.demand.selling) == (2.3026, 17)
    rng = random.Random(3)
    f = Forecaster("weekprofile", tz="Europe/London")
    for h in range(1000, 1000 + 24 * 9):
        f.learn(h, float(rng.randint(0, 4)))
    g = decode_forecaster(encode_forecaster(f), "weekprofile")
    assert g.model.tz == "Europe/London" and g.forecast(48) == f.forecast(48)


@pytest.mark.parametrize("hours", [5, SEASON + 30])
@pytest.mark.parametrize("kind", ["holtwinters", "holtwinters_raw", "profile"])
def test_a_forecaster_decoded_learns_and_forecasts_as_the_original(kind: str, hours: int) -> None:
    rng = random.Random(hours)
    f = Forecaster(kind)
    for h in range(1000, 1000 + hours):
        f.learn(h, float(rng.randint(0, 4)), censored=rng.random() < 0.1, estimate=2.0)
    g = decode_forecaster(encode_forecaster(f), kind)
    for h in range(1000 + hours, 1000 + hours + 40):  # through initialisation when not yet
        y = float(rng.randint(0, 4))
        assert f.learn(h, y) == g.learn(h, y)
    assert f.forecast(48) == g.forecast(48)
    assert (f.dispersion, f.abs_error, f.learned) == (g.dispersion, g.abs_error, g.learned)


def test_holt_winters_is_stored_as_numbers_not_a_pickle() -> None:
    f = Forecaster("holtwinters")
    for h in range(SEASON * 2):
        f.learn(h, 1.0)
    blob = encode_forecaster(f)
    assert blob[0] == 1 and b"river" not in blob
    assert len(blob) < len(f.dumps()) // 3  # the pickle, as the table held it
    with pytest.raises(ModelFormatError):
        decode_forecaster(blob, "snarimax")


@pytest.mark.parametrize("bad", [b"", b"\x07rest", b"\x01" + b"\x00" * 40, b"\x02" + b"\x00" * 10])
def test_a_malformed_value_is_a_clear_error(settings: Settings, bad: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_state(bad)
    good = encode_state(steady_state(settings))
    with pytest.raises(StateFormatError):
        decode_state(good[: len(good) // 2])


def test_value_version_is_none_for_what_is_not_a_state() -> None:
    assert value_version(b'{"version": 3}') is None
    assert value_version({"version": 3}) is None
