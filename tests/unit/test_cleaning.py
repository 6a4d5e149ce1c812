"""`backroom.cleaning.clean` on the dirty samples under data/raw and on small inline files.

    pytest tests/unit/test_cleaning.py
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from backroom import records
from backroom.cleaning import REJECT_CODES, CleaningError, clean, map_columns

RAW = Path(__file__).resolve().parents[2] / "data" / "raw"


def rejects(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def rows(path: str | Path) -> list[dict[str, object]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reader = "read_parquet" if str(path).endswith(".parquet") else "read_csv"
    cur = con.execute(f"SELECT * FROM {reader}(?)", [str(path)])
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("clean")
    return {name: clean(RAW / f"{name}.csv", out, tz="Europe/Berlin") for name in ("sales", "scans", "products")}


def test_samples_cover_every_reject_code(samples) -> None:  # type: ignore[no-untyped-def]
    seen: set[str] = set()
    for summary in samples.values():
        seen |= set(summary.rejects_by_code)  # type: ignore[attr-defined]
    assert seen == set(REJECT_CODES)


def test_every_rejected_row_has_one_row_number_and_reason(samples) -> None:  # type: ignore[no-untyped-def]
    for name, summary in samples.items():
        rej = rejects(summary.outputs["rejects"])  # type: ignore[attr-defined]
        assert len(rej) == summary.rows_rejected + summary.rows_set_aside  # type: ignore[attr-defined]
        numbers = [int(r["row"]) for r in rej]
        assert len(numbers) == len(set(numbers)), name  # one reason per row
        assert all(r["reason"] and r["code"] in REJECT_CODES for r in rej)
        assert summary.rows_in == (summary.rows_out + summary.rows_returns  # type: ignore[attr-defined]
                                   + summary.rows_set_aside + summary.rows_rejected)  # type: ignore[attr-defined]


def test_sales_sample_rejects_the_rows_it_should(samples) -> None:  # type: ignore[no-untyped-def]
    by_row = {int(r["row"]): r for r in rejects(samples["sales"].outputs["rejects"])}  # type: ignore[attr-defined]
    # Row numbers are data rows (line - 1), as a person counts them in a spreadsheet.
    assert by_row[12]["code"] == "duplicate_row" and "row 11" in by_row[12]["reason"]
    assert by_row[14]["code"] == "duplicate_event_id"
    assert by_row[19]["code"] == "bad_store_id"
    assert by_row[23]["code"] == "ts_out_of_range"
    assert by_row[25]["code"] == "bad_unit" and "kg" in by_row[25]["reason"]
    assert 28 not in by_row  # qty -1: a return, in the returns file
    assert by_row[29]["code"] == "qty_out_of_range"  # qty 0
    returned = rejects(samples["sales"].outputs["returns"])  # type: ignore[attr-defined]
    assert [(r["row"], r["code"], r["qty_returned"]) for r in returned] == [("28", "return", "1")]
    assert by_row[32]["code"] == "csv_malformed" and "EXTRA" in by_row[32]["raw"]
    assert by_row[33]["code"] == "csv_malformed"
    assert 34 not in by_row  # the valid row after the malformed lines keeps its own number
    # a column of upper-case codes with one typo is not a column of product names
    assert by_row[20]["code"] == "bad_sku" and "MILK 1L" in by_row[20]["reason"]


def test_sales_values_are_normalised(samples) -> None:  # type: ignore[no-untyped-def]
    out = {r["event_id"]: r for r in rows(samples["sales"].outputs["data"])}  # type: ignore[attr-defined]
    utc = UTC
    # naive local (Europe/Berlin, UTC+1 in November) -> UTC
    assert out["T1001-1"]["ts"] == datetime(2026, 11, 27, 7, 2, 11, tzinfo=utc)
    assert out["T1001-1"]["unit_price"] == pytest.approx(1.19)  # decimal comma
    assert out["T1002-1"]["ts"] == datetime(2026, 11, 27, 7, 5, 40, tzinfo=utc)  # Z kept
    assert out["T1002-1"]["unit_price"] == pytest.approx(7.99)  # currency symbol
    assert out["T1003-1"]["ts"] == datetime(2026, 11, 27, 8, 15, tzinfo=utc)  # 27.11.2026 09:15
    assert out["T1004-1"]["ts"] == datetime(2026, 11, 27, 8, 31, tzinfo=utc)  # 11/27/2026 9:31 AM
    assert out["T1005-1"]["ts"] == datetime(2026, 11, 27, 9, 12, 3, tzinfo=utc)  # +01:00
    assert out["T1005-1"]["qty"] == 1  # "1 ea"
    assert out["T1006-1"]["ts"] == datetime(2026, 11, 27, 9, 0, tzinfo=utc)  # epoch seconds
    assert out["T1008-1"]["qty"] == 1000  # "1,000" thousands separator
    assert out["T1009-1"]["sku"] == "000123"  # Excel's leading apostrophe dropped
    # sorted by event time
    stamps = [str(r["ts"]) for r in rows(samples["sales"].outputs["data"])]  # type: ignore[attr-defined]
    assert stamps == sorted(stamps)


def test_output_rows_are_valid_contract_records(samples) -> None:  # type: ignore[no-untyped-def]
    for name, rec in (("sales", records.Sale), ("scans", records.Scan)):
        for r in rows(samples[name].outputs["data"]):  # type: ignore[attr-defined]
            rec.model_validate({k: v for k, v in r.items() if v is not None})
    for r in rows(samples["products"].outputs["data"]):  # type: ignore[attr-defined]
        records.CatalogSku.model_validate({k: v for k, v in r.items() if v is not None and k != "store_id"})


def test_scans_units_kinds_and_double_scans(samples) -> None:  # type: ignore[no-untyped-def]
    out = rows(samples["scans"].outputs["data"])  # type: ignore[attr-defined]
    got = {(r["sku"], r["kind"], r["qty"], r["location"]) for r in out}
    assert ("MILK-1L", "receive", 48, "backroom") in got  # "4 cs" x pack size 12
    assert ("COFFEE-500", "receive", 12, "backroom") in got  # "2 case" x 6, GR -> receive
    assert ("WATER-6PK", "receive", 12, "backroom") in got  # "1 dozen"
    assert ("EGGS-10", "adjust", -2, "shelf") in got  # "Damage 2" removes stock
    assert ("BREAD-WHT", "count", 14, "shelf") in got  # Cycle Count on Shelf
    by_row = {int(r["row"]): r for r in rejects(samples["scans"].outputs["rejects"])}  # type: ignore[attr-defined]
    assert by_row[5]["code"] == "double_scan" and "row 4" in by_row[5]["reason"]
    assert 6 not in by_row  # the same move 90 s later is a real second move
    # Same event written two ways (27.11.2026 07:05 "Damage" vs 2026-11-27 07:05:00 "damaged"):
    # no source id, so the content hash makes them one event.
    assert by_row[12]["code"] == "duplicate_event_id"


def test_catalog_later_row_wins(samples) -> None:  # type: ignore[no-untyped-def]
    out = rows(samples["products"].outputs["data"])  # type: ignore[attr-defined]
    milk_s2 = [r for r in out if r["sku"] == "MILK-1L" and r["store_id"] == "S002"]
    assert len(milk_s2) == 1 and milk_s2[0]["shelf_capacity"] == 48
    bread = next(r for r in out if r["sku"] == "BREAD-WHT")
    assert bread["lead_time_hours"] == 24.0 and bread["store_id"] == "*"  # "1 d"


def write(tmp_path: Path, text: str, name: str = "raw.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_timezone_option_and_day_first_detection(tmp_path: Path) -> None:
    raw = write(
        tmp_path,
        "id,date,time,store,item_id,units\n"
        "a,05/11/2026,10:00,S1,A,1\n"  # ambiguous: 5 Nov or 11 May
        "b,25/11/2026,10:00,S1,A,1\n",  # day 25 proves day-first
    )
    s = clean(raw, tmp_path / "o", tz="America/New_York")
    assert s.date_order == "dmy"
    out = {r["event_id"]: r["ts"] for r in rows(s.outputs["data"])}
    assert out["a"] == datetime(2026, 11, 5, 15, 0, tzinfo=UTC)  # EST = UTC-5
    assert out["b"] == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def test_dst_is_respected_for_naive_times(tmp_path: Path) -> None:
    raw = write(tmp_path, "id,timestamp,store,sku,qty\nsummer,2026-07-01 12:00:00,S1,A,1\nwinter,2026-12-01 12:00:00,S1,A,1\n")
    s = clean(raw, tmp_path / "o", tz="Europe/Berlin")
    out = {r["event_id"]: r["ts"] for r in rows(s.outputs["data"])}
    assert out["summer"] == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert out["winter"] == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)


def test_csv_output_uses_iso_utc_strings(tmp_path: Path) -> None:
    raw = write(tmp_path, "sku,store,qty,ts\nA,S1,2,2026-11-27 10:00:00.5\n")
    s = clean(raw, tmp_path / "o", "csv", tz="UTC")
    text = Path(s.outputs["data"]).read_text()
    assert text.splitlines()[0] == "event_id,ts,store_id,sku,qty,unit_price,register_id"
    assert "2026-11-27T10:00:00.500000Z" in text


def test_derived_event_ids_are_stable(tmp_path: Path) -> None:
    raw = write(tmp_path, "sku,store,qty,ts\nA,S1,2,2026-11-27 10:00:00\n")
    a = rows(clean(raw, tmp_path / "o1").outputs["data"])
    b = rows(clean(raw, tmp_path / "o2").outputs["data"])
    assert a[0]["event_id"] == b[0]["event_id"] and str(a[0]["event_id"]).startswith("sale-")


def test_case_pack_from_catalog(tmp_path: Path) -> None:
    cat = clean(RAW / "products.csv", tmp_path / "cat")
    raw = write(tmp_path, "sku,store,qty,ts\nCHIPS-175,S1,2 cs,2026-11-27 10:00:00\nMILK-1L,S002,1 case,2026-11-27 10:00:00\n")
    s = clean(raw, tmp_path / "o", catalog=cat.outputs["data"])
    got = {r["sku"]: r["qty"] for r in rows(s.outputs["data"])}
    assert got == {"CHIPS-175": 48, "MILK-1L": 12}  # store row first, then "*"


def test_header_aliases() -> None:
    mapping, ignored = map_columns(["Item Number", "Store ID", "Quantity", "Sold At", "Till", "Colour"])
    assert mapping == {"sku": "Item Number", "store_id": "Store ID", "qty": "Quantity", "ts": "Sold At",
                       "register_id": "Till"}
    assert ignored == ["Colour"]
    assert map_columns(["location_id", "item_id", "units", "timestamp"])[0]["store_id"] == "location_id"


def test_summary_file_and_bad_inputs(tmp_path: Path) -> None:
    raw = write(tmp_path, "sku,store,qty,ts\nA,S1,2,2026-11-27 10:00:00\n")
    s = clean(raw, tmp_path / "o")
    saved = json.loads(Path(s.outputs["summary"]).read_text())
    assert saved["rows_out"] == 1 and saved["kind"] == "sales"
    with pytest.raises(CleaningError, match="cannot tell"):
        clean(write(tmp_path, "foo,bar\n1,2\n", "x.csv"), tmp_path / "o")
    with pytest.raises(CleaningError, match="time zone"):
        clean(raw, tmp_path / "o", tz="Mars/Olympus")
    with pytest.raises(CleaningError, match="no such file"):
        clean(tmp_path / "missing.csv", tmp_path / "o")


def test_non_finite_prices_are_rejected(tmp_path: Path) -> None:
    raw = write(tmp_path, "event_id,ts,store_id,sku,qty,unit_price\n"
                "e1,2026-11-27T09:00:00Z,S1,A,1,Infinity\ne2,2026-11-27T09:00:00Z,S1,A,1,1e309\n"
                "e3,2026-11-27T09:00:00Z,S1,A,1,NaN\ne4,2026-11-27T09:00:00Z,S1,A,1,-inf\n"
                "e5,2026-11-27T09:00:00Z,S1,A,1,2.5\n")
    s = clean(raw, tmp_path / "o", fmt="csv")
    assert s.rows_out == 1 and s.rejects_by_code == {"bad_price": 4}
    cat = write(tmp_path, "sku,name,category,shelf_capacity,min_shelf_qty,lead_time_hours,case_pack,unit_cost\n"
                "A,a,c,10,2,24,6,inf\nB,b,c,10,2,24,6,1.5\n", "cat.csv")
    assert clean(cat, tmp_path / "o").rejects_by_code == {"bad_price": 1}


def test_catalog_rows_pass_the_records_own_validation(tmp_path: Path) -> None:
    # One rule for the API and `clean`: min_shelf_qty above shelf_capacity is refused with the
    # message of records.CatalogSku.
    cat = write(tmp_path, "sku,name,category,shelf_capacity,min_shelf_qty,lead_time_hours,case_pack\n"
                "A,a,c,10,12,24,6\nB,b,c,10,10,24,6\n", "cat.csv")
    s = clean(cat, tmp_path / "o")
    assert s.rows_out == 1 and s.rejects_by_code == {"invalid_record": 1}
    (rej,) = rejects(s.outputs["rejects"])
    assert "min_shelf_qty 12 is above shelf_capacity 10" in rej["reason"]


def test_far_future_rows_are_rejected_against_the_files_own_latest_time(tmp_path: Path) -> None:
    lines = [f"e{i},2026-11-27T{8 + i // 60:02d}:{i % 60:02d}:00Z,S1,A,1" for i in range(100)]
    lines += ["x1,2100-12-31T00:00:00Z,S1,A,1", "x2,2026-12-02T00:00:00Z,S1,B,1",
              "ok,2026-11-28T09:00:00Z,S1,A,1"]
    raw = write(tmp_path, "event_id,ts,store_id,sku,qty\n" + "\n".join(lines) + "\n")
    s = clean(raw, tmp_path / "o", max_future_hours=24)
    assert s.rejects_by_code == {"ts_far_future": 2} and s.ts_max == "2026-11-28T09:00:00Z"
    by_row = {int(r["row"]): r for r in rejects(s.outputs["rejects"])}
    assert set(by_row) == {101, 102}
    assert "ahead of the file's latest time" in by_row[101]["reason"]
    assert clean(raw, tmp_path / "o2", max_future_hours=0).rows_rejected == 0
