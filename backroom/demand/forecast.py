"""Hourly demand forecasters (River) with a residual band, one per store×SKU.

    from backroom.demand.forecast import Forecaster
    f = Forecaster("linear")
    for hour, qty in enumerate(hourly_sales, start=first_epoch_hour):
        f.learn(hour, qty, censored=False)
    f.forecast(48)          # the next 48 hours, units per hour
    f.variance(2.0)         # variance of one hour whose forecast is 2.0

Tests: `pytest tests/unit/test_forecast.py`. The backtest (`backroom backtest`) compares the
models on the same simulated store and reports WAPE per model; `BACKROOM_DEMAND_MODEL` picks one.

Hours are event-time epoch hours (UTC hour index). A forecaster must be fed every hour in order:
the time-series models (HoltWinters, SNARIMAX) have no notion of a skipped step. A censored hour
(the shelf was empty, so sales understate demand) is therefore fed to them as the higher of
their own forecast and the tracker's estimate (sales scaled to the stocked time): imputation
keeps the seasonal index aligned, and the estimate stops a SKU that empties every afternoon from
learning its own low forecast for ever; the linear model learns a censored hour only when the
estimate is above its forecast (the sales prove that much).

The band: squared one-step residuals are tracked as a quasi-Poisson dispersion
`phi = EW mean of (y - f)^2 / max(f, floor)`, so an hour forecast at f units has variance
`phi * f`. Retail sales are counts whose spread grows with the level; a constant sigma would
give closed-store hours a band and make busy hours look too certain.
"""

from __future__ import annotations

import base64
import math
import pickle
from typing import Any

from river import compose, linear_model, optim, preprocessing, time_series

MODELS = ("linear", "holtwinters", "snarimax")
SEASON = 24  # hours: the daily cycle every model is told about
VAR_FLOOR = 0.25  # units/hour below which a forecast's variance is not shrunk further


def weekday_of(hour: int) -> int:
    """Monday = 0 for an epoch hour (1970-01-01 was a Thursday)."""
    return (hour // 24 + 3) % 7


def hour_features(hour: int) -> dict[str, float]:
    """Dense one-hot hour-of-day and weekday. Dense on purpose: River's StandardScaler only
    updates the features present in a dict, so absent zeros would never be scaled."""
    x = {f"h{i:02d}": 0.0 for i in range(24)}
    x.update({f"d{i}": 0.0 for i in range(7)})
    x[f"h{hour % 24:02d}"] = 1.0
    x[f"d{weekday_of(hour)}"] = 1.0
    return x


def make_model(kind: str) -> Any:
    """The River estimator behind one forecaster kind (hyperparameters chosen in the backtest)."""
    if kind == "holtwinters":
        # Additive: closed-store hours are zeros, which a multiplicative season cannot divide by.
        # River's additive season reads the trend, so a (nearly frozen) trend is required.
        return time_series.HoltWinters(alpha=0.05, beta=0.001, gamma=0.15, seasonality=SEASON)
    if kind == "snarimax":
        return time_series.SNARIMAX(
            p=1, d=0, q=0, m=SEASON, sp=1, sd=0, sq=0,
            regressor=preprocessing.StandardScaler()
            | linear_model.LinearRegression(optimizer=optim.SGD(0.005), intercept_lr=0.05),
        )  # fmt: skip
    if kind == "linear":
        return compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LinearRegression(optimizer=optim.SGD(0.02), intercept_lr=0.05),
        )
    raise ValueError(f"unknown demand model {kind!r}; choose one of {', '.join(MODELS)}")


class Forecaster:
    """One store×SKU's River model plus its residual dispersion; pickled into the table."""

    def __init__(self, kind: str, residual_alpha: float = 0.03) -> None:
        self.kind = kind
        self.model = make_model(kind)
        self.residual_alpha = residual_alpha
        self.next_hour: int | None = None  # the epoch hour the next `learn` must be about
        self.learned = 0  # hours fed (imputed censored hours included for time-series models)
        self.observed = 0  # uncensored hours
        self.dispersion = 1.0  # Poisson until residuals say otherwise
        self.abs_error = 0.0  # EW mean absolute one-step error, for the evidence

    # --- learning ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """One full season seen (HoltWinters raises before that; the others are still guessing)."""
        return self.learned >= SEASON

    def learn(self, hour: int, qty: float, censored: bool = False,
              estimate: float | None = None) -> float | None:
        """Learn one closed hour; returns the one-step forecast made for it before learning.

        A censored hour's sales are a lower bound on its demand; `estimate` (the sales scaled
        to the time the shelf was stocked, from the tracker) is what the demand probably was."""
        if self.next_hour is not None and hour != self.next_hour:
            raise ValueError(f"hour {hour} fed out of order: expected {self.next_hour}")
        pred = self.forecast_from(hour, 1)[0] if self.ready else None
        if censored:
            guess = max(pred or 0.0, estimate if estimate is not None else qty)
            if self.kind != "linear":
                self._learn(hour, guess)
                self.learned += 1
            elif pred is not None and guess > pred:
                self._learn(hour, guess)  # only what the sales prove: more than forecast
        else:
            if pred is not None:
                err = qty - pred
                a = self.residual_alpha
                self.dispersion += a * (err * err / max(pred, VAR_FLOOR) - self.dispersion)
                self.abs_error += a * (abs(err) - self.abs_error)
            self._learn(hour, float(qty))
            self.learned += 1
            self.observed += 1
        self.next_hour = hour + 1
        return pred

    def _learn(self, hour: int, y: float) -> None:
        if self.kind == "linear":
            self.model.learn_one(hour_features(hour), y)
            return
        if self.kind == "holtwinters" and self.learned + 1 == SEASON:
            firsts = [*self.model._first_values, y]
            if sum(firsts) == 0:
                # River seeds the season by dividing by the mean of the first season: a SKU
                # that sold nothing for a whole day would raise ZeroDivisionError here.
                y = 1e-9
        self.model.learn_one(y)
        if self.kind == "holtwinters" and self.learned + 1 == SEASON:
            # River 0.26 seeds an *additive* season with ratios y / level (the multiplicative
            # seed), which biases every forecast low until gamma has washed it out (days).
            # Re-seed it as deviations y - level, as additive Holt-Winters defines it.
            m = self.model
            level = m.level[-1]
            seeded = [v - level for v in m._first_values]
            m.season.clear()
            m.season.extend(seeded)
            # It also seeds the trend with the mean first difference of that one day, noise
            # that (with a near-frozen beta) biases the level for weeks. Demand has no trend
            # within days: start it at zero.
            if m.trend is not None:
                m.trend.clear()
                m.trend.append(0.0)

    # --- forecasting ---------------------------------------------------------------------------
    def forecast(self, horizon: int) -> list[float]:
        """Units per hour for the `horizon` hours after the last learned one (never negative)."""
        if self.next_hour is None:
            return [0.0] * horizon
        return self.forecast_from(self.next_hour, horizon)

    def forecast_from(self, start: int, horizon: int) -> list[float]:
        if self.kind == "linear":
            return self._linear_forecast(start, horizon)
        if not self.ready:
            return [0.0] * horizon
        return [max(0.0, float(v)) for v in self.model.forecast(horizon)]

    def _linear_forecast(self, start: int, horizon: int) -> list[float]:
        # The pipeline's prediction for one-hot x is intercept + sum_k w_k (x_k - m_k) / s_k,
        # i.e. a constant plus one term per active feature. Reading it off the fitted scaler and
        # weights once costs ~31 operations instead of 48 dict pipelines (~0.7 ms per hour and
        # SKU); tests check it against `predict_one`.
        scaler, reg = self.model.steps.values()
        means, variances, weights = scaler.means, scaler.vars, reg._weights
        const = reg.intercept
        term: dict[str, float] = {}
        for name in hour_features(0):
            v = variances.get(name, 0.0)
            w = weights.get(name, 0.0)
            if v:
                s = v**0.5
                const -= w * means[name] / s
                term[name] = w / s
            else:
                # A feature never seen varying scales to 0 whatever its value.
                term[name] = 0.0
        out = []
        for h in range(start, start + horizon):
            y = const + term[f"h{h % 24:02d}"] + term[f"d{weekday_of(h)}"]
            out.append(y if y > 0.0 else 0.0)
        return out

    def variance(self, forecast: float) -> float:
        """Variance of one hour's demand given its forecast (quasi-Poisson)."""
        return self.dispersion * max(forecast, 0.0) if forecast > 0 else 0.0

    # --- persistence ---------------------------------------------------------------------------
    def dumps(self) -> str:
        return base64.b64encode(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")

    @staticmethod
    def loads(blob: str) -> Forecaster:
        obj = pickle.loads(base64.b64decode(blob))
        if not isinstance(obj, Forecaster):
            raise TypeError(f"not a Forecaster: {type(obj).__name__}")
        return obj


def band(forecast: list[float], dispersion: float, z: float = 1.64) -> tuple[list[float], list[float]]:
    """Lower/upper band per hour: f ± z·sqrt(phi·f), the lower one clipped at zero."""
    lo, hi = [], []
    for f in forecast:
        sd = math.sqrt(dispersion * f) if f > 0 else 0.0
        lo.append(max(0.0, f - z * sd))
        hi.append(f + z * sd)
    return lo, hi
