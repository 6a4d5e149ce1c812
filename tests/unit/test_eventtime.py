"""The far-future rule: per-store watermarks, jumps confirmed by another SKU, a file's reference.

    pytest tests/unit/test_eventtime.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backroom.eventtime import HOUR_US, FutureGuard, far_future_reason, file_bound, reference_rank

T0 = 1_795_770_000 * 1_000_000  # 2026-11-27 (µs)


def test_nothing_seen_accepts_then_far_future_is_refused_and_keeps_the_watermark() -> None:
    g = FutureGuard(24)
    assert g.check("S1", T0, "S1:A") is None
    assert g.check("S1", T0 + 23 * HOUR_US, "S1:A") is None  # within the bound: moves the mark
    reason = g.check("S1", T0 + 100 * 365 * 24 * HOUR_US, "S1:A")
    assert reason is not None and reason.startswith("far-future ts:") and "BACKROOM_MAX_FUTURE_HOURS" in reason
    assert g.watermarks["S1"] == T0 + 23 * HOUR_US
    # The same SKU repeating its bad stamp does not confirm it.
    assert g.check("S1", T0 + 100 * 365 * 24 * HOUR_US, "S1:A") is not None
    assert g.check("S1", T0 + 24 * HOUR_US, "S1:B") is None  # normal events still flow


def test_stores_have_their_own_watermark() -> None:
    g = FutureGuard(24)
    g.check("S1", T0 + 1000 * HOUR_US, "S1:A")
    assert g.check("S2", T0, "S2:A") is None
    assert g.check("S2", T0 + 48 * HOUR_US, "S2:A") is not None


def test_a_real_jump_is_confirmed_by_another_sku() -> None:
    g = FutureGuard(24)
    g.check("S1", T0, "S1:A")
    monday = T0 + 60 * HOUR_US  # closed for the weekend
    assert g.check("S1", monday, "S1:A") is not None  # the first one after the gap is refused
    assert g.check("S1", monday + HOUR_US, "S1:B") is None  # a second SKU agrees
    assert g.check("S1", monday + 2 * HOUR_US, "S1:A") is None


def test_seed_counts_and_zero_turns_the_rule_off() -> None:
    g = FutureGuard(24)
    assert g.check("S1", T0 + 30 * HOUR_US, "S1:A", seed_us=T0) is not None  # a restart remembers
    assert FutureGuard(0).check("S1", T0 + 10**6 * HOUR_US, "S1:A", seed_us=T0) is None
    assert far_future_reason(T0 + 25 * HOUR_US, T0, 24, "x") is not None
    assert far_future_reason(T0 + 24 * HOUR_US, T0, 24, "x") is None


def test_a_files_reference_ignores_its_latest_few_stamps() -> None:
    assert [reference_rank(n) for n in (4, 10, 2999, 3001, 100_000)] == [3, 3, 3, 4, 100]
    base = datetime(2026, 11, 27, tzinfo=UTC)
    dense = [base + timedelta(minutes=i) for i in range(50)] + [datetime(2100, 12, 31, tzinfo=UTC)] * 2
    bound = file_bound(dense, len(dense), 24)
    assert bound is not None
    ref, allowed = bound
    assert ref == base + timedelta(minutes=49) and 24 < allowed < 24.1
    assert file_bound(dense[:3], 3, 24) is None and file_bound(dense, len(dense), 0) is None
    # A sparse file (one count a day) allows its own spacing: its last days are not refused.
    daily = [base + timedelta(days=i) for i in range(30)]
    ref, allowed = file_bound(daily, 30, 24) or (base, 0.0)
    assert ref == base + timedelta(days=27) and allowed == 24 + 72
