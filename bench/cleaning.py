"""Throughput of `backroom.cleaning.clean` on a generated dirty sales export.

Run: `python -m bench.cleaning --rows 1000000 [--dir /tmp/clean-bench] [--threads N]`.
Prints one JSON object: rows, seconds (cleaning only, generation excluded), rows_per_minute,
and the summary's reject counts. The file mixes timestamp formats and zones, decimal commas,
units ("2 ea", "1 case"), duplicates and bad rows in realistic proportions (about 3 % rejected).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

from backroom.cleaning import clean


def generate_sales_csv(path: Path, rows: int, seed: int = 7) -> None:
    """Write a dirty POS sales export of `rows` data rows with DuckDB (seconds for millions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
        con.execute(
            f"""COPY (
            SELECT
                CASE WHEN i % 997 = 5 THEN 'T' || (i - 1) ELSE 'T' || i END AS "Line ID",
                CASE i % 5
                    WHEN 0 THEN strftime(t, '%Y-%m-%d %H:%M:%S')
                    WHEN 1 THEN strftime(t, '%Y-%m-%dT%H:%M:%SZ')
                    WHEN 2 THEN strftime(t, '%d.%m.%Y %H:%M')
                    WHEN 3 THEN strftime(t, '%m/%d/%Y %I:%M %p')
                    ELSE strftime(t, '%Y-%m-%dT%H:%M:%S') || '+01:00' END AS "Sold At",
                CASE WHEN i % 1009 = 0 THEN '' ELSE 'S' || lpad(CAST(i % 40 AS VARCHAR), 3, '0') END AS "Store ID",
                'SKU-' || lpad(CAST(CAST(random() * 500 AS INT) AS VARCHAR), 4, '0') AS "Item Number",
                CASE WHEN i % 101 = 0 THEN '1 case' WHEN i % 53 = 0 THEN '0'
                     WHEN i % 7 = 0 THEN CAST(1 + i % 4 AS VARCHAR) || ' ea'
                     ELSE CAST(1 + i % 3 AS VARCHAR) END AS "Quantity",
                CASE WHEN i % 2 = 0 THEN replace(printf('%.2f', 0.5 + (i % 900) / 100.0), '.', ',')
                     ELSE '$' || printf('%.2f', 0.5 + (i % 900) / 100.0) END AS "Unit Price",
                'R' || (i % 8) AS "Register",
                CASE WHEN i % 101 = 0 THEN '12' ELSE '' END AS "Pack Size"
            FROM (SELECT i, TIMESTAMP '2026-11-01 06:00:00' + to_seconds(i * 2) AS t
                  FROM range({int(rows)}) r(i))
            ) TO '{path}' (FORMAT csv, HEADER true)"""
        )
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/backroom-clean-bench"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    args = ap.parse_args()
    raw = args.dir / f"sales_{args.rows}.csv"
    if not raw.exists():
        generate_sales_csv(raw, args.rows)
    started = time.perf_counter()
    summary = clean(raw, args.dir / "out", args.format, tz="Europe/Berlin", threads=args.threads)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": summary.rows_in,
                "rows_out": summary.rows_out,
                "rows_rejected": summary.rows_rejected,
                "seconds": round(seconds, 2),
                "rows_per_minute": round(summary.rows_in / seconds * 60),
                "rejects_by_code": summary.rejects_by_code,
                "file_mb": round(raw.stat().st_size / 1e6, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
