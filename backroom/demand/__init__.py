"""Demand: River forecasts per store×SKU, projections, reorder points, and the backtest.

    backroom backtest --days 14 --stores 3 --skus 20 --seed 7 --json --plots docs/img

- `forecast`: the River models compared (HoltWinters, SNARIMAX, linear on time features), the
  residual band, and the `Forecaster` that lives (pickled) in the inventory table;
- `projection`: walking the hourly forecast to hours-to-shelf-out / hours-to-stockout and the
  reorder point / order-up-to level;
- `backtest`: the simulator + the same processors as the worker, scored against the truth.
"""
