"""A demand model (`Forecaster`) as bytes for the table value: its numbers, not a pickle.

    from backroom.demand.model_codec import encode_forecaster, decode_forecaster
    blob = encode_forecaster(f); f2 = decode_forecaster(blob, f.kind)

Tests: `pytest tests/unit/test_state_codec.py`. Holt-Winters (the default, `holtwinters` and
`holtwinters_raw`) is its forecaster's counters and River's level, trend and season deques
(~290 bytes); the hyperparameters come from `make_model(kind)` on load. The other kinds,
compared in the backtest, are pickled behind their tag byte (a pickle runs code on load: the
changelog is the worker's own topic).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from backroom.demand.forecast import HOLT_WINTERS, Forecaster

MODEL_NONE, MODEL_HW, MODEL_PICKLE = 0, 1, 2
_FORECASTER = struct.Struct("<dqqddB")  # residual_alpha learned observed dispersion abs_error has_next
_Q = struct.Struct("<q")
_B = struct.Struct("<B")
_H = struct.Struct("<H")


class ModelFormatError(ValueError):
    pass


def _doubles(out: bytearray, values: Any) -> None:
    values = list(values)
    out += _H.pack(len(values))
    out += struct.pack(f"<{len(values)}d", *values)


def encode_forecaster(f: Forecaster) -> bytes:
    """The model part of a tracker (`DemandTracker.model`): a tag byte, then its numbers."""
    if f.kind not in HOLT_WINTERS:
        return bytes([MODEL_PICKLE]) + pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL)
    m = f.model
    out = bytearray([MODEL_HW])
    out += _FORECASTER.pack(f.residual_alpha, f.learned, f.observed, f.dispersion, f.abs_error,
                            f.next_hour is not None)
    if f.next_hour is not None:
        out += _Q.pack(f.next_hour)
    out += _B.pack(m._initialized)
    _doubles(out, m.level)
    if m.trend is None:
        out += _H.pack(0xFFFF)
    else:
        _doubles(out, m.trend)
    _doubles(out, m.season if m.season is not None else ())
    # The first season's values seed the model and are read only until it is initialised.
    _doubles(out, () if m._initialized else m._first_values)
    return bytes(out)


def _read_doubles(blob: bytes, i: int) -> tuple[list[float], int]:
    (n,) = _H.unpack_from(blob, i)
    i += 2
    return list(struct.unpack_from(f"<{n}d", blob, i)), i + 8 * n


def decode_forecaster(blob: bytes, kind: str) -> Forecaster:
    """The forecaster `encode_forecaster` wrote; `kind` (the tracker's) builds Holt-Winters."""
    tag = blob[0] if blob else -1
    if tag == MODEL_PICKLE:
        obj = pickle.loads(blob[1:])
        if not isinstance(obj, Forecaster):
            raise ModelFormatError(f"not a Forecaster: {type(obj).__name__}")
        return obj
    if tag != MODEL_HW or kind not in HOLT_WINTERS:
        raise ModelFormatError(f"demand model tag {tag} does not hold a {kind!r} model")
    try:
        f = Forecaster(kind)
        i = 1
        f.residual_alpha, f.learned, f.observed, f.dispersion, f.abs_error, has_next = (
            _FORECASTER.unpack_from(blob, i)
        )
        i += _FORECASTER.size
        if has_next:
            (f.next_hour,) = _Q.unpack_from(blob, i)
            i += _Q.size
        m = f.model
        m._initialized = bool(blob[i])
        level, i = _read_doubles(blob, i + 1)
        m.level.extend(level)
        if _H.unpack_from(blob, i)[0] == 0xFFFF:
            m.trend, i = None, i + 2
        else:
            trend, i = _read_doubles(blob, i)
            m.trend.extend(trend)
        season, i = _read_doubles(blob, i)
        if m.season is not None:
            m.season.extend(season)
        m._first_values, i = _read_doubles(blob, i)
    except struct.error as exc:
        raise ModelFormatError(f"malformed demand model: {exc}") from None
    return f
