"""`backroom clean` on small files in the shapes of real exports (written for these tests, not
copied from the public datasets): invoice lines with cancellations and fee lines, a till's basket
log without quantities, a loyalty-card sample with offset timestamps; `--map`, `--store` and the
message for a file it cannot map.

    pytest tests/unit/test_real_exports.py
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from backroom.cleaning import (
    REJECT_CODES,
    RETURN_CODES,
    SET_ASIDE_CODES,
    CleaningError,
    Summary,
    clean,
)

DATA = Path(__file__).resolve().parent / "data"


def rows(path: str | Path) -> list[dict[str, object]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reader = "read_parquet" if str(path).endswith(".parquet") else "read_csv"
    cur = con.execute(f"SELECT * FROM {reader}(?)", [str(path)])
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def accounted(s: Summary) -> None:
    """Every row once: output, returns, set aside or rejected, each with one reason."""
    assert s.rows_in == s.rows_out + s.rows_returns + s.rows_set_aside + s.rows_rejected
    assert sum(s.rejects_by_code.values()) == s.rows_rejected
    assert sum(s.set_aside_by_code.values()) == s.rows_set_aside
    assert sum(s.returns_by_code.values()) == s.rows_returns
    assert len(rows(s.outputs["data"])) == s.rows_out
    rej = read_csv(s.outputs["rejects"])
    assert len(rej) == s.rows_rejected + s.rows_set_aside
    assert all(r["reason"] and (r["code"] in REJECT_CODES or r["code"] in SET_ASIDE_CODES) for r in rej)
    ret = read_csv(s.outputs["returns"]) if s.rows_returns else []
    assert len(ret) == s.rows_returns and all(r["code"] in RETURN_CODES for r in ret)
    numbers = [int(r["row"]) for r in rej] + [int(r["row"]) for r in ret]
    assert len(numbers) == len(set(numbers))  # one reason per row
    assert s.rows_in == s.rows_out + len(numbers)


def test_invoice_lines_with_cancellations_and_fee_lines(tmp_path: Path) -> None:
    s = clean(DATA / "invoice_lines.csv", tmp_path, store="UK1", tz="Europe/London")
    accounted(s)
    assert s.columns["txn_id"] == "InvoiceNo" and s.columns["sku"] == "StockCode"
    assert s.columns["ts"] == "InvoiceDate" and s.columns["unit_price"] == "UnitPrice"
    assert s.rows_in == 17 and s.rows_out == 4
    assert s.returns_by_code == {"cancellation": 1, "return": 1}
    assert s.set_aside_by_code == {"postage": 1, "fee": 2, "manual": 1, "discount": 1,
                                   "stock_correction": 2, "voucher": 1}
    assert s.rejects_by_code == {"duplicate_row": 1, "qty_out_of_range": 1, "bad_ts": 1}
    out = rows(s.outputs["data"])
    assert {r["sku"] for r in out} == {"85123A", "71053", "22633", "84029E"}
    assert all(r["store_id"] == "UK1" for r in out)
    lantern = next(r for r in out if r["sku"] == "71053")
    assert lantern["name"] == "WHITE METAL LANTERN" and lantern["event_id"] == "536365-2"
    # 8:26 in London in December is 8:26 UTC
    assert next(r for r in out if r["sku"] == "85123A")["ts"] == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    ret = {r["row"]: r for r in read_csv(s.outputs["returns"])}
    assert ret["9"]["code"] == "cancellation" and ret["9"]["qty_returned"] == "2"
    assert ret["13"]["code"] == "return" and ret["13"]["sku"] == "22633"
    rej = {r["row"]: r for r in read_csv(s.outputs["rejects"])}
    assert rej["3"]["code"] == "duplicate_row" and "row 2" in rej["3"]["reason"]
    assert rej["5"]["code"] == "postage" and rej["10"]["code"] == "discount"  # a cancelled fee line
    assert rej["11"]["code"] == "stock_correction" and rej["12"]["code"] == "stock_correction"


def test_basket_log_without_quantities_counts_units(tmp_path: Path) -> None:
    s = clean(DATA / "basket_log.csv", tmp_path, store="BAKERY1", tz="Europe/London")
    accounted(s)
    assert s.rows_in == 13 and s.rows_out == 10
    assert s.set_aside_by_code == {"no_item": 1, "adjustment": 1}
    assert s.rejects_by_code == {"duplicate_row": 1}  # transaction 2 again, after others
    assert any("one unit per row" in n for n in s.notes) and any("product names" in n for n in s.notes)
    out = rows(s.outputs["data"])
    units: dict[tuple[str, str], int] = {}
    for r in out:
        key = (str(r["event_id"]).split("-")[0], str(r["sku"]))
        units[key] = units.get(key, 0) + int(r["qty"])  # type: ignore[call-overload]
    assert units[("2", "SCANDINAVIAN")] == 2 and units[("6", "BREAD")] == 2  # units, not duplicates
    hot = [r for r in out if r["sku"] == "HOT_CHOCOLATE"]
    assert len(hot) == 2 and hot[0]["name"] == "Hot chocolate"
    # split date (day first, dashed) + time; 30 Oct 2016 is after the clocks went back: GMT
    assert min(r["ts"] for r in out) == datetime(2016, 10, 30, 9, 58, 11, tzinfo=UTC)  # type: ignore[type-var]
    assert len({r["event_id"] for r in out}) == len(out)


def test_offsets_in_timestamps_are_honoured(tmp_path: Path) -> None:
    s = clean(DATA / "loyalty_sample.csv", tmp_path)
    accounted(s)
    assert s.rows_out == 5 and s.rejects_by_code == {"qty_out_of_range": 1, "duplicate_row": 1}
    out = {r["sku"]: r for r in rows(s.outputs["data"])}
    assert out["940996"]["ts"] == datetime(2017, 1, 28, 19, 6, 53, tzinfo=UTC)  # -05:00
    assert out["847901"]["ts"] == datetime(2017, 3, 26, 17, 22, 21, tzinfo=UTC)  # -04:00 (EDT)
    assert out["13094913"]["qty"] == 2 and out["940996"]["store_id"] == "309"


def test_map_and_store_options(tmp_path: Path) -> None:
    raw = DATA / "unmappable.csv"
    s = clean(raw, tmp_path, maps=["Fecha=ts", "Articulo=sku", "cantidad=qty"], store="S9")
    accounted(s)
    assert s.rows_out == 2 and {r["store_id"] for r in rows(s.outputs["data"])} == {"S9"}
    with pytest.raises(CleaningError, match="no column 'Precio'"):
        clean(raw, tmp_path, maps=["Precio=unit_price"])
    with pytest.raises(CleaningError, match="not a field"):
        clean(raw, tmp_path, maps=["Fecha=when"])
    with pytest.raises(CleaningError, match="not a code"):
        clean(raw, tmp_path, maps=["Fecha=ts", "Articulo=sku", "Cantidad=qty"], store="my store")


def test_a_store_column_wins_over_store_only_where_it_is_empty(tmp_path: Path) -> None:
    raw = tmp_path / "r.csv"
    raw.write_text("sku,store,qty,ts\nA,S1,1,2026-11-27 10:00:00\nB,,1,2026-11-27 10:00:00\n")
    s = clean(raw, tmp_path / "o", store="S2")
    assert {r["sku"]: r["store_id"] for r in rows(s.outputs["data"])} == {"A": "S1", "B": "S2"}


def test_unmappable_file_names_the_columns_and_the_map_to_add(tmp_path: Path) -> None:
    with pytest.raises(CleaningError) as err:
        clean(DATA / "unmappable.csv", tmp_path)
    msg = str(err.value)
    assert "Columns seen: Fecha, Articulo, Cantidad" in msg
    assert "--map Articulo=sku --map Fecha=ts --map Cantidad=qty --store ID" in msg
    # a basket log without a store column: only --store is missing
    with pytest.raises(CleaningError, match=r"no column for store_id\..*Add: --store ID"):
        clean(DATA / "basket_log.csv", tmp_path)


def test_cli_prints_the_suggested_map(tmp_path: Path) -> None:
    from cli.main import app

    res = CliRunner().invoke(app, ["clean", str(DATA / "unmappable.csv"), "--out", str(tmp_path)])
    assert res.exit_code == 1
    text = " ".join(res.output.split())  # rich/typer may wrap
    assert "--map Articulo=sku" in text and "--map Fecha=ts" in text and "Cantidad" in text
    res = CliRunner().invoke(app, ["clean", str(DATA / "unmappable.csv"), "--out", str(tmp_path), "--json",
                                   "--map", "Fecha=ts", "--map", "Articulo=sku", "--map", "Cantidad=qty",
                                   "--store", "S9"])
    assert res.exit_code == 0, res.output
    assert '"rows_out": 2' in res.output


def test_location_header_is_a_store_in_sales_and_a_stock_location_in_scans() -> None:
    from backroom.cleaning import map_columns

    assert map_columns(["Location", "Item", "Qty", "Sold At"])[0]["store_id"] == "Location"
    scans, _ = map_columns(["ts", "sku", "kind", "qty", "location"])
    assert scans["location"] == "location" and "store_id" not in scans
    both, _ = map_columns(["ts", "store", "sku", "kind", "qty", "location"])
    assert both["store_id"] == "store" and both["location"] == "location"


def test_a_cleaned_basket_log_replays_as_contract_sales(tmp_path: Path) -> None:
    from backroom import records
    from producers.replay import iter_events

    s = clean(DATA / "basket_log.csv", tmp_path, store="BAKERY1")
    events = list(iter_events([Path(s.outputs["data"])]))
    assert len(events) == s.rows_out and {k for k, _ in events} == {"sales"}
    for _, row in events:
        records.Sale.model_validate(row)
