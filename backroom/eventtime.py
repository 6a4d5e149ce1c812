"""Far-future event times: a bound relative to the stream's own event time, not the wall clock.

    pytest tests/unit/test_eventtime.py

One sale stamped 2100-12-31 would otherwise move a store's event-time clock 74 years ahead:
every age, projection and alert after it is measured from 2100. The rule, used alike by the
worker (`backroom.processing`), the ingest API and `clean`:

- An event more than `max_future_hours` (`BACKROOM_MAX_FUTURE_HOURS`, default 24; 0 = off)
  ahead of the **watermark** is refused with a reason. The worker and the ingest API keep one
  watermark per **store**: the latest event time accepted for any of its SKUs (the worker also
  counts the SKU's own persisted state clock, so a restart does not forget it). A store with no
  watermark yet accepts anything: there is nothing to compare with.
- A refused event does not move the watermark. A real jump (a store reopening after more than
  `max_future_hours` closed) shows up as events of **different SKUs** agreeing on the new time:
  the first is refused and remembered; an event of another SKU within `max_future_hours` of it
  is accepted and moves the watermark. So a gap costs its first event (kept in `dead-letter`,
  replayable), while a lone bad stamp, or one SKU's repeated bad stamps, never moves the clock.
- A file (`clean`) has no stream before it: the reference is the file's robust latest time,
  the `reference_rank(n)`-th latest accepted timestamp (its 99.9th percentile, never the latest
  two rows), so a handful of bad stamps cannot set the reference they are judged by; rows more
  than `max_future_hours` plus the spread of the file's own latest rows ahead of it are refused
  (`file_bound`). Files of fewer than 4 rows are not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

HOUR_US = 3_600_000_000
PENDING = 16  # refused stamps remembered per store, to recognise a real jump
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(ts: datetime) -> int:
    """Integer microseconds since the epoch (as `backroom.inventory.micros`, without its imports)."""
    return (ts - EPOCH) // timedelta(microseconds=1)


def us_to_iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def far_future_reason(ts_us: int, reference_us: int, hours: float, what: str) -> str | None:
    """The refusal reason when `ts_us` is more than `hours` ahead of `reference_us`, else None."""
    if hours <= 0 or ts_us - reference_us <= hours * HOUR_US:
        return None
    ahead = (ts_us - reference_us) / HOUR_US
    return (
        f"far-future ts: {us_to_iso(ts_us)} is {ahead:,.1f} h ahead of {what} {us_to_iso(reference_us)} "
        f"(limit {hours:g} h, BACKROOM_MAX_FUTURE_HOURS)"
    )


class FutureGuard:
    """Per-store watermarks and the far-future rule (see the module docstring)."""

    def __init__(self, max_future_hours: float) -> None:
        self.hours = max_future_hours
        self.watermarks: dict[str, int] = {}
        self._pending: dict[str, list[tuple[int, str]]] = {}

    def check(self, store: str, ts_us: int, key: str, seed_us: int | None = None) -> str | None:
        """None when the event may be used (the watermark moves to it), else why it may not.

        `key` names the event's SKU (store:sku); `seed_us` is a clock already known for it (the
        SKU state's), counted as part of the store's watermark."""
        if self.hours <= 0:
            return None
        mark = self.watermarks.get(store)
        if seed_us is not None and (mark is None or seed_us > mark):
            mark = self.watermarks[store] = seed_us
        if mark is None:
            self.watermarks[store] = ts_us
            return None
        reason = far_future_reason(ts_us, mark, self.hours, f"store {store}'s latest event")
        if reason is None:
            if ts_us > mark:
                self.watermarks[store] = ts_us
            return None
        pending = self._pending.setdefault(store, [])
        limit = self.hours * HOUR_US
        if any(k != key and abs(ts_us - t) <= limit for t, k in pending):
            # Two SKUs agree on the new time: the store's stream really moved on.
            self.watermarks[store] = ts_us
            pending.clear()
            return None
        pending.append((ts_us, key))
        del pending[:-PENDING]
        return reason

    def adopt(self, trial: FutureGuard) -> None:
        """Take a trial copy's watermarks and refusals (the whole request passed)."""
        self.watermarks, self._pending = trial.watermarks, trial._pending

    def remember_refusals(self, trial: FutureGuard) -> None:
        """Keep only a trial copy's refusals (the request failed): they may confirm a jump."""
        self._pending = trial._pending

    def copy(self) -> FutureGuard:
        other = FutureGuard(self.hours)
        other.watermarks = dict(self.watermarks)
        other._pending = {s: list(p) for s, p in self._pending.items()}
        return other


MIN_FILE_ROWS = 4  # fewer accepted rows than this: no robust reference, no check


def reference_rank(n: int) -> int:
    """Which latest timestamp (1 = the latest) of n is a file's reference: the 99.9th percentile,
    but never one of the latest two."""
    return max(3, math.ceil(n * 0.001))


def file_bound(latest: Sequence[datetime], n: int, hours: float) -> tuple[datetime, float] | None:
    """(reference, allowed hours ahead of it) for a file of n accepted rows, from its latest
    `2 * reference_rank(n)` timestamps (any order); None when the file is too small to judge or
    the rule is off.

    The allowance is `hours` plus how much time the file's own latest rows span between the
    reference and the row as far again below it (`2 * rank`): a dense export allows about
    `hours`, a sparse one (a daily count) allows its own spacing too, so its last rows are not
    refused for being a day apart. A stamp years ahead is refused either way."""
    if hours <= 0 or n < MIN_FILE_ROWS:
        return None
    rank = reference_rank(n)
    top = sorted(latest, reverse=True)[: 2 * rank]
    reference = top[rank - 1]
    spread = (reference - top[-1]).total_seconds() / 3600
    return reference, hours + spread
