"""Clean real exports and check, with SQL of its own, that every genuine sale line was kept.

    .venv/bin/python scripts/real_exports_check.py DIR    # DIR holds the public files below

The files are not in the repository (docs/byod.md says where they come from):
`Online_Retail.csv` (UCI Online Retail as CSV, dates as exported: "12/1/2010 8:26"),
`BreadBasket_DMS.csv` and `transactions.csv` (the dunnhumby Complete Journey sample). Each line
printed is one JSON object: the summary's counts and throughput, the number of genuine sale
lines by a definition independent of `clean` (first copy of a line, positive quantity, a product:
5-digit stock codes with a positive price for Online Retail, not NONE/Adjustment/Gift voucher
for the bakery) and how many of them ended anywhere but the output.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import duckdb

from backroom.cleaning import clean

EXPORTS = {
    "Online_Retail.csv": (
        {"store": "UK1", "tz": "Europe/London"},
        r"""regexp_full_match(InvoiceNo, '\d+') AND TRY_CAST(Quantity AS INT) > 0
            AND TRY_CAST(UnitPrice AS DOUBLE) > 0 AND regexp_full_match(StockCode, '\d{5}[A-Za-z]{0,2}')""",
        True,
    ),
    # A basket log: identical rows are units, so every copy counts.
    "BreadBasket_DMS.csv": ({"store": "BAKERY1", "tz": "Europe/London"},
                            "Item NOT IN ('NONE', 'Adjustment', 'Gift voucher')", False),
    "transactions.csv": ({}, "TRY_CAST(quantity AS INT) > 0", True),
}


def check(path: Path, out: Path, options: dict[str, str], genuine: str, first_copy: bool) -> dict[str, object]:
    s = clean(path, out, **options)  # type: ignore[arg-type]
    con = duckdb.connect()
    lit = "'" + str(path).replace("'", "''") + "'"
    con.execute(f"CREATE TABLE t AS SELECT row_number() OVER () AS row_no, * FROM read_csv({lit}, all_varchar=true)")
    cols = ", ".join('"' + r[0] + '"' for r in con.execute("DESCRIBE t").fetchall()[1:])
    copy = "k = 1 AND " if first_copy else ""
    gen = {r[0] for r in con.execute(
        f"""SELECT row_no FROM (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY row_no) AS k FROM t)
            WHERE {copy}{genuine}""").fetchall()}
    elsewhere: set[int] = set()
    for name in ("rejects", "returns"):
        f = Path(s.outputs.get(name, ""))
        if f.is_file():
            with open(f, newline="", encoding="utf-8") as fh:
                elsewhere |= {int(r["row"]) for r in csv.DictReader(fh)}
    lost = gen & elsewhere
    return {
        "export": path.name, "rows_in": s.rows_in, "kept": s.rows_out, "returns": s.returns_by_code,
        "set_aside": s.set_aside_by_code, "rejected": s.rejects_by_code,
        "adds_up": s.rows_in == s.rows_out + s.rows_returns + s.rows_set_aside + s.rows_rejected,
        "seconds": s.seconds, "rows_per_minute": s.rows_per_minute,
        "genuine": len(gen), "genuine_kept": len(gen) - len(lost),
        "genuine_kept_share": round((len(gen) - len(lost)) / len(gen), 5) if gen else None,
    }


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (options, genuine, first_copy) in EXPORTS.items():
            if (folder / name).is_file():
                print(json.dumps(check(folder / name, Path(tmp), options, genuine, first_copy)), flush=True)
            else:
                print(json.dumps({"export": name, "missing": str(folder / name)}), flush=True)


if __name__ == "__main__":
    main()
