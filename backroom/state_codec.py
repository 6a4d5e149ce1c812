"""The inventory table's per-key value: one store×SKU's `SkuState` as a compact binary record.

    from backroom.state_codec import encode_state, decode_state, value_version
    blob = encode_state(state)      # bytes for the table (and its changelog)
    state = decode_state(blob)      # the same SkuState back
    value_version(blob)             # its version, without decoding the rest

Tests: `pytest tests/unit/test_state_codec.py`. Every field of a state is a number or a short
string, so the value is fixed-width fields (little-endian `struct`) plus length-prefixed runs:
no field names, no base64, no JSON parsing. The demand model travels as its numbers: River's
Holt-Winters state (level, trend, the season's 25 indices) and the forecaster's counters, not a
pickle; the forecast cache is kept at its 4 decimals as integers. At steady state (`bench scale`,
a full dedup window and a first model) that is ~1.3 KB a key instead of ~2.3 KB of JSON, and
decoding it is a handful of `unpack_from` calls instead of `orjson.loads` plus a pickle.

Layout (format 2; the first byte is the format, so a later layout can be told apart):

    B format | q version | q shelf | q backroom | q on_order | H flags
    [q clock_us] [q shelf_count_us] [q backroom_count_us] [d vision_fill] [q shelf_seen_max]
    str store_id | str sku | [str last_event_id] | offsets | deltas | seen | demand

and `demand` (the `DemandTracker`):

    H flags | d rate | q hours_seen | d clock | d dispersion | d day_c | d day_level
    q fc_base | q days | d typical | q selling | B model tag
    [q bucket_hour] [d empty_since] [d day_y] [str kind] | buckets | fc | wd | [model]

`typical` and `selling` are the outlier guard's (format 2; the project keeps no reader of an
older format).

`str` is a u8 length (u16 for event ids) and UTF-8; the bracketed fields are present when
their flag bit is set. Doubles are stored as doubles, so a decoded state is exactly the one
encoded (the live-state cache relies on that).

Demand models other than Holt-Winters (`profile`, `weekprofile`, `snarimax`, `linear`) are
stored pickled behind a tag byte (a `weekprofile` keeps its store zone in it): trust the
changelog as you trust the worker's code.
"""

from __future__ import annotations

import struct
from typing import Any

from backroom.demand.model_codec import MODEL_NONE
from backroom.demand.tracker import DemandTracker
from backroom.inventory import SeenIds, SkuState

FORMAT = 2  # 2: the demand part carries the outlier guard (`typical`, `selling`)

_HEAD = struct.Struct("<BqqqqH")
_Q = struct.Struct("<q")
_D = struct.Struct("<d")
_B = struct.Struct("<B")
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_BUCKET = struct.Struct("<qdd")

# SkuState flags
_CLOCK, _SHELF_COUNT, _BACK_COUNT, _FILL, _SEEN_MAX, _LAST_ID = (1 << i for i in range(6))
# DemandTracker flags
_BUCKET_HOUR, _EMPTY_SINCE, _DAY_Y, _KIND, _FC_INT = (1 << i for i in range(5))
# flags rate hours_seen clock dispersion day_c day_level fc_base days typical selling model-tag
_DEMAND = struct.Struct("<HdqddddqqdqB")
_FC_SCALE = 10_000  # the forecast cache is rounded to 4 decimals (DemandTracker._close)


class StateFormatError(ValueError):
    """A table value that is not a state in this format."""


# --- writing -------------------------------------------------------------------------------------


def _str8(out: bytearray, s: str) -> None:
    b = s.encode()
    if len(b) > 255:
        raise StateFormatError(f"{s[:40]!r}…: longer than 255 bytes")
    out += _B.pack(len(b))
    out += b


def _doubles(out: bytearray, values: Any) -> None:
    values = list(values)
    out += _H.pack(len(values))
    out += struct.pack(f"<{len(values)}d", *values)


def encode_state(state: SkuState) -> bytes:
    flags = 0
    opt = bytearray()
    for bit, value in ((_CLOCK, state.clock_us), (_SHELF_COUNT, state.shelf_count_us),
                       (_BACK_COUNT, state.backroom_count_us)):
        if value is not None:
            flags |= bit
            opt += _Q.pack(value)
    if state.vision_fill is not None:
        flags |= _FILL
        opt += _D.pack(state.vision_fill)
    if state.shelf_seen_max is not None:
        flags |= _SEEN_MAX
        opt += _Q.pack(state.shelf_seen_max)
    if state.last_event_id is not None:
        flags |= _LAST_ID
    out = bytearray(_HEAD.pack(FORMAT, state.version, state.shelf_qty, state.backroom_qty,
                               state.on_order, flags))
    out += opt
    _str8(out, state.store_id)
    _str8(out, state.sku)
    if state.last_event_id is not None:
        b = state.last_event_id.encode()
        out += _H.pack(len(b))
        out += b
    out += _B.pack(len(state.offsets))
    for tp, offset in state.offsets.items():
        _str8(out, tp)
        out += _Q.pack(offset)
    out += _H.pack(len(state.deltas))
    out += state.deltas
    out += _H.pack(len(state.seen.buf))
    out += state.seen.buf
    _encode_demand(out, state.demand)
    return bytes(out)


def _encode_demand(out: bytearray, d: DemandTracker) -> None:
    d.round_sums()  # as a JSON value was: the live state must equal the one read back
    flags = 0
    if d.bucket_hour is not None:
        flags |= _BUCKET_HOUR
    if d.empty_since is not None:
        flags |= _EMPTY_SINCE
    if d.day_y is not None:
        flags |= _DAY_Y
    if d.kind is not None:
        flags |= _KIND
    fc_int = [round(v * _FC_SCALE) for v in d.fc]
    if all(-(2**31) <= n < 2**31 and n / _FC_SCALE == v for n, v in zip(fc_int, d.fc, strict=True)):
        flags |= _FC_INT
    model = d.model
    tag = MODEL_NONE if model is None else model[0]
    out += _DEMAND.pack(
        flags, d.rate, d.hours_seen, d.clock, d.dispersion, d.day_c, d.day_level, d.fc_base, d.days,
        d.typical, d.selling, tag,
    )
    if d.bucket_hour is not None:
        out += _Q.pack(d.bucket_hour)
    if d.empty_since is not None:
        out += _D.pack(d.empty_since)
    if d.day_y is not None:
        out += _D.pack(d.day_y)
    if d.kind is not None:
        _str8(out, d.kind)
    out += _H.pack(len(d.buckets))
    for h, (qty, empty) in d.buckets.items():
        out += _BUCKET.pack(h, qty, empty)
    if flags & _FC_INT:
        out += _H.pack(len(fc_int))
        out += struct.pack(f"<{len(fc_int)}i", *fc_int)
    else:
        _doubles(out, d.fc)
    out += _B.pack(len(d.wd))
    out += struct.pack(f"<{len(d.wd)}d", *d.wd)
    if model is not None:
        out += _I.pack(len(model) - 1)
        out += model[1:]


# --- reading -------------------------------------------------------------------------------------


def value_version(value: Any) -> int | None:
    """The version of a stored state, read from its first bytes; None if it is not one."""
    if isinstance(value, bytes | bytearray | memoryview) and len(value) >= _HEAD.size and value[0] == FORMAT:
        return int(_Q.unpack_from(value, 1)[0])
    return None


def decode_state(buf: bytes) -> SkuState:
    if not buf or buf[0] != FORMAT:
        raise StateFormatError(f"not an inventory state of format {FORMAT}")
    try:
        state, end = _decode_state(buf)
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise StateFormatError(f"malformed inventory state: {exc}") from None
    if end != len(buf):
        raise StateFormatError(f"malformed inventory state: {len(buf) - end} bytes left over")
    return state


def _read_str8(buf: bytes, i: int) -> tuple[str, int]:
    n = buf[i]
    end = i + 1 + n
    if end > len(buf):
        raise StateFormatError("value truncated")
    return buf[i + 1 : end].decode(), end


def _decode_state(buf: bytes) -> tuple[SkuState, int]:
    # Flat, with one offset `i`: a decode runs per key and batch, and a reader object's method
    # per field cost about half of it.
    q, d = _Q.unpack_from, _D.unpack_from
    _, version, shelf, back, on_order, flags = _HEAD.unpack_from(buf, 0)
    i = _HEAD.size
    clock = shelf_count = back_count = fill = seen_max = None
    if flags & _CLOCK:
        (clock,), i = q(buf, i), i + 8
    if flags & _SHELF_COUNT:
        (shelf_count,), i = q(buf, i), i + 8
    if flags & _BACK_COUNT:
        (back_count,), i = q(buf, i), i + 8
    if flags & _FILL:
        (fill,), i = d(buf, i), i + 8
    if flags & _SEEN_MAX:
        (seen_max,), i = q(buf, i), i + 8
    store_id, i = _read_str8(buf, i)
    sku, i = _read_str8(buf, i)
    last_id = None
    if flags & _LAST_ID:
        (n,) = _H.unpack_from(buf, i)
        last_id, i = buf[i + 2 : i + 2 + n].decode(), i + 2 + n
    offsets = {}
    count, i = buf[i], i + 1
    for _ in range(count):
        tp, i = _read_str8(buf, i)
        (offsets[tp],), i = q(buf, i), i + 8
    (n,) = _H.unpack_from(buf, i)
    deltas, i = buf[i + 2 : i + 2 + n], i + 2 + n
    (n,) = _H.unpack_from(buf, i)
    seen, i = SeenIds(buf[i + 2 : i + 2 + n]), i + 2 + n
    if i > len(buf):
        raise StateFormatError("value truncated")
    demand, i = _decode_demand(buf, i)
    state = SkuState(
        store_id=store_id, sku=sku, shelf_qty=shelf, backroom_qty=back, on_order=on_order,
        clock_us=clock, version=version, last_event_id=last_id, vision_fill=fill,
        shelf_count_us=shelf_count, backroom_count_us=back_count, offsets=offsets,
        deltas=deltas, seen=seen, demand=demand, shelf_seen_max=seen_max,
    )
    return state, i


def _decode_demand(buf: bytes, i: int) -> tuple[DemandTracker, int]:
    (flags, rate, hours_seen, clock, dispersion, day_c, day_level, fc_base, days, typical, selling,
     tag) = _DEMAND.unpack_from(buf, i)
    i += _DEMAND.size
    bucket_hour = empty_since = day_y = kind = None
    if flags & _BUCKET_HOUR:
        (bucket_hour,), i = _Q.unpack_from(buf, i), i + 8
    if flags & _EMPTY_SINCE:
        (empty_since,), i = _D.unpack_from(buf, i), i + 8
    if flags & _DAY_Y:
        (day_y,), i = _D.unpack_from(buf, i), i + 8
    if flags & _KIND:
        kind, i = _read_str8(buf, i)
    (n,) = _H.unpack_from(buf, i)
    i += 2
    buckets = {}
    for h, qty, empty in _BUCKET.iter_unpack(buf[i : i + n * _BUCKET.size]) if n else ():
        buckets[h] = [qty, empty]
    i += n * _BUCKET.size
    (n,) = _H.unpack_from(buf, i)
    i += 2
    if flags & _FC_INT:
        fc = [v / _FC_SCALE for v in struct.unpack_from(f"<{n}i", buf, i)]
        i += 4 * n
    else:
        fc = list(struct.unpack_from(f"<{n}d", buf, i))
        i += 8 * n
    n = buf[i]
    wd = list(struct.unpack_from(f"<{n}d", buf, i + 1))
    i += 1 + 8 * n
    model = None
    if tag != MODEL_NONE:
        (n,) = _I.unpack_from(buf, i)
        model, i = bytes([tag]) + buf[i + 4 : i + 4 + n], i + 4 + n
    tracker = DemandTracker(
        rate=rate, hours_seen=hours_seen, bucket_hour=bucket_hour, buckets=buckets,
        empty_since=empty_since, clock=clock, kind=kind, model=model, fc=fc, fc_base=fc_base,
        dispersion=dispersion, wd=wd, day_y=day_y, day_c=day_c, day_level=day_level, days=days,
        typical=typical, selling=selling,
    )
    return tracker, i
