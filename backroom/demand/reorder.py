"""Reorder point and order-up-to level from the hourly forecast.

    from backroom.demand.reorder import ReorderPolicy, reorder_levels, order_quantity
    lv = reorder_levels(tracker, ts, lead_time_hours=48, policy=ReorderPolicy(z=2.33))
    order_quantity(position=30, order_up_to=lv.order_up_to, case_pack=12)

Tests: `pytest tests/unit/test_reorder.py`.

- reorder point  ROP = D_L + z·σ_L, where D_L is the forecast demand over the lead time L
  (walked hour by hour, so a lead time spanning nights and a weekend is not a flat rate) and
  σ_L² = Σ_h phi·f_h the summed quasi-Poisson variances: for a flat forecast with hourly
  standard deviation σ this is exactly z·σ·√L;
- order-up-to    S = D_{L+R} + z·σ_{L+R}: stock to cover the lead time plus one review cycle
  R (`order_cycle_hours`), so an order is not followed by another one a few sales later;
- order quantity S − position, rounded up to whole case packs (at least one case).
- with `recheck` (the default), L counts from the next expected sale (`recheck_hours`, from
  the forecast): alerts are evaluated on events, and a closed night has none, so the reorder
  point must already cover the jump it takes by the first sale of the morning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class DemandView(Protocol):
    def demand_over(self, ts: datetime, hours: float) -> tuple[float, float]: ...


# The forecast's level errs too, not only its hourly noise: a level error with a coefficient of
# variation c adds (c·D)² to the variance of a demand sum D, i.e. var = phi·D·(1 + D/H) with
# H = phi/c². H is in units of demand: sums well under H are Poisson-like, sums of H units and
# more carry the level error (H 45 at phi 1: c 15 %). The alert rules read the forecast band back
# from the state's safety stock with the same H (`band_k`).
LEVEL_UNITS = 45.0


@dataclass(frozen=True)
class ReorderPolicy:
    z: float = 2.33  # Settings.service_level_z
    order_cycle_hours: float = 24.0
    level_units: float = LEVEL_UNITS  # H above; 0 = Poisson variance only (before)
    recheck: bool = True


def with_level_error(mean: float, var: float, level_units: float = LEVEL_UNITS) -> float:
    """The variance of a demand sum with the forecast's level error: var · (1 + mean/H)."""
    return var * (1 + max(mean, 0.0) / level_units) if level_units > 0 else var


def band_k(safety_stock: float, lead_time_demand: float, level_units: float = LEVEL_UNITS) -> float:
    """z·sqrt(phi), read back from reorder levels: safety stock = z·sqrt(phi·D·(1 + D/H))."""
    return safety_stock / math.sqrt(with_level_error(lead_time_demand, lead_time_demand, level_units))


@dataclass(frozen=True)
class ReorderLevels:
    lead_time_demand: float
    safety_stock: float
    reorder_point: float
    order_up_to: float


def reorder_levels(demand: DemandView, ts: datetime, lead_time_hours: float,
                   policy: ReorderPolicy, recheck_hours: float = 0.0) -> ReorderLevels:
    lead = lead_time_hours + recheck_hours
    mean_l, var_l = demand.demand_over(ts, lead)
    mean_s, var_s = demand.demand_over(ts, lead + policy.order_cycle_hours)
    var_l = with_level_error(mean_l, var_l, policy.level_units)
    var_s = with_level_error(mean_s, var_s, policy.level_units)
    safety = policy.z * math.sqrt(max(var_l, 0.0))
    up_to = mean_s + policy.z * math.sqrt(max(var_s, 0.0))
    return ReorderLevels(
        lead_time_demand=round(mean_l, 2),
        safety_stock=round(safety, 2),
        reorder_point=round(mean_l + safety, 2),
        order_up_to=round(max(up_to, mean_l + safety), 2),
    )


def order_quantity(position: float, order_up_to: float, case_pack: int) -> int:
    """Units to order to bring `position` up to `order_up_to`, in whole cases (≥ one case)."""
    pack = max(1, case_pack)
    cases = max(1, math.ceil((order_up_to - position) / pack))
    return cases * pack
