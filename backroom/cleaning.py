"""Cleaning raw POS/ERP CSV exports into contract-shaped history files.

Run it: `backroom clean data/raw/sales.csv --out data/processed [--format csv] [--tz Europe/Berlin]`
or from Python: `clean(Path("data/raw/sales.csv"), Path("data/processed"))`.

One raw file in, three files out (named after the input's stem):

- `<stem>.parquet` (or `.csv`): the accepted rows with the contract's field names
  (`pos.sales`, `backroom.scans` or `catalog.skus` plus `store_id`), sorted by event time;
- `<stem>.rejects.csv`: `row, code, reason, raw` — one reason per rejected row, `row` being the
  1-based data row of the input (the header is not counted);
- `<stem>.summary.json`: counts, rejects by code, event-time range, throughput.

All the work is SQL in DuckDB over `read_csv(all_varchar=true)`: columns are read as text, every
check and conversion is a vectorised expression, so a million rows take seconds, not minutes
(`python -m bench.cleaning` measures it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import duckdb

from backroom import records
from backroom.eventtime import file_bound, reference_rank

Kind = Literal["sales", "scans", "catalog"]
KINDS: tuple[Kind, ...] = ("sales", "scans", "catalog")
Format = Literal["parquet", "csv"]
DateOrder = Literal["auto", "dmy", "mdy"]

# The contract's own patterns, so a row accepted here is never refused by `records.decode`.
CODE_RE = records.Code.__metadata__[0].pattern  # type: ignore[attr-defined]
EVENT_ID_RE = records.EventId.__metadata__[0].pattern  # type: ignore[attr-defined]
MAX_QTY = records.MAX_QTY

# Header aliases seen in POS/ERP exports, compared after lower-casing and turning every run of
# non-alphanumerics into "_" ("Item Number" -> item_number). Earlier aliases win when a file
# has several candidates for one field.
ALIASES: dict[str, tuple[str, ...]] = {
    "event_id": (
        "event_id", "eventid", "transaction_line_id", "line_id", "txn_line_id", "scan_id",
        "movement_id", "receipt_line_id", "id",
    ),
    # The transaction a line belongs to (invoice, receipt, basket, order): cancellations are read
    # from it, a basket log's lines are numbered within it, and it goes into derived event ids.
    "txn_id": (
        "transaction_id", "txn_id", "transaction", "transaction_no", "transaction_number",
        "invoiceno", "invoice_no", "invoice", "invoice_number", "invoice_id", "receipt_id",
        "receipt_no", "receipt_number", "receipt", "basket_id", "basket", "order_id", "order_no",
        "order_number", "order", "ticket_id", "ticket_no", "ticket", "bill_no",
    ),
    "ts": (
        "ts", "timestamp", "event_time", "datetime", "date_time", "sold_at", "scanned_at",
        "transaction_time", "txn_time", "created_at", "occurred_at", "transaction_timestamp",
        "transaction_datetime", "invoicedate", "invoice_datetime", "order_datetime", "order_time",
        "purchase_time", "purchased_at", "sale_datetime",
    ),
    "ts_date": ("date", "sale_date", "business_date", "transaction_date", "scan_date"),
    "ts_time": ("time", "sale_time", "scan_time", "time_of_day"),
    "store_id": (
        "store_id", "store", "storeid", "store_no", "store_number", "store_code", "location_id",
        "site_id", "site", "shop_id", "shop", "branch", "branch_id", "outlet", "outlet_id",
        # last: in a scans file "location" is the stock location (see `map_columns`)
        "location",
    ),
    "sku": (
        "sku", "sku_id", "sku_code", "item_id", "item_number", "item_no", "item_code", "item",
        "article_number", "article", "product_id", "product_code", "material", "stockcode",
        "stock_code", "upc", "ean", "gtin", "plu", "barcode", "article_no", "article_id", "product",
    ),
    "qty": ("qty", "quantity", "units", "qty_sold", "units_sold", "unit_qty", "pieces", "count"),
    "uom": ("uom", "unit", "unit_of_measure", "qty_unit"),
    "unit_price": (
        "unit_price", "unitprice", "price", "sale_price", "selling_price", "retail_price", "price_each",
        "item_price",
    ),
    "register_id": ("register_id", "register", "till", "till_id", "pos_id", "terminal", "lane"),
    "kind": ("kind", "scan_kind", "scan_type", "movement_type", "movement", "activity", "type"),
    "location": ("location", "stock_location", "area", "zone", "bin"),
    "case_pack": ("case_pack", "pack_size", "case_size", "units_per_case", "case_qty"),
    "name": (
        "name", "product_name", "item_name", "description", "item_description", "title",
        "product_description",
    ),
    "category": ("category", "department", "dept", "category_name", "product_group", "family"),
    "shelf_capacity": ("shelf_capacity", "capacity", "shelf_cap", "max_shelf_qty", "max_shelf"),
    "min_shelf_qty": ("min_shelf_qty", "min_shelf", "min_qty", "minimum_shelf_qty", "min_facing_qty"),
    "lead_time_hours": ("lead_time_hours", "lead_time_h", "lead_time_hrs", "lead_time", "leadtime"),
    "lead_time_days": ("lead_time_days", "lead_days", "lead_time_d"),
    "unit_cost": ("unit_cost", "cost", "cost_price", "purchase_price"),
    "aisle": ("aisle", "aisle_id", "shelf_location"),
}

# Units a quantity may carry ("12 ea", "1 case", "2 cs"). Case units need a case pack.
EACH_UNITS = ("", "ea", "each", "pc", "pcs", "piece", "pieces", "unit", "units", "u", "x", "st")
CASE_UNITS = ("cs", "case", "cases", "ctn", "carton", "cartons", "crt")
DOZEN_UNITS = ("dz", "doz", "dozen")

# Scanner and ERP vocabularies for the four scan kinds. Shrink-like words are adjustments that
# remove stock, so a positive quantity is turned negative.
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "receive": ("receive", "received", "receiving", "receipt", "delivery", "gr", "goods_receipt", "rcv", "in"),
    "move_to_shelf": (
        "move_to_shelf", "move", "moved", "replenish", "replenishment", "shelf_fill", "fill",
        "stock_shelf", "mts", "to_shelf",
    ),
    "count": ("count", "cycle_count", "stocktake", "stock_take", "inventory", "recount", "cnt"),
    "adjust": ("adjust", "adjustment", "adj", "correction"),
}
NEGATIVE_ADJUST_WORDS = ("shrink", "damage", "damaged", "waste", "theft", "spoilage", "expired", "loss")
LOCATION_WORDS: dict[str, tuple[str, ...]] = {
    "backroom": ("backroom", "back", "br", "stockroom", "storage", "warehouse", "back_room", "bor"),
    "shelf": ("shelf", "floor", "salesfloor", "sales_floor", "sf", "front", "store_floor"),
}

# Timestamp layouts tried in order. Slash dates depend on the file's day/month order; dotted and
# dashed day-first dates are unambiguous in practice (European exports).
_NAIVE_COMMON = [
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M",
    "%Y%m%d %H%M%S",
]
_SLASH_DMY = ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %I:%M %p"]
_SLASH_MDY = ["%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p"]
_AWARE = [
    "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M%z", "%Y/%m/%d %H:%M:%S%z",
    "%d/%m/%Y %H:%M:%S%z", "%m/%d/%Y %H:%M:%S%z",
]

OUTPUT_COLUMNS: dict[Kind, tuple[str, ...]] = {
    "sales": ("event_id", "ts", "store_id", "sku", "qty", "unit_price", "register_id"),
    "scans": ("event_id", "ts", "store_id", "sku", "kind", "qty", "location"),
    "catalog": (
        "store_id", "sku", "name", "category", "shelf_capacity", "min_shelf_qty",
        "lead_time_hours", "case_pack", "unit_cost", "aisle",
    ),
}

# Every reject code `clean` can produce, for docs/data.md and the tests.
REJECT_CODES: dict[str, str] = {
    "csv_malformed": "the line could not be parsed as CSV (wrong column count, bad quoting, encoding)",
    "missing_field": "a required field is empty",
    "bad_store_id": "store code is not 1-64 of A-Z a-z 0-9 _ . -",
    "bad_sku": "SKU code is not 1-64 of A-Z a-z 0-9 _ . -",
    "bad_event_id": "event id is not 1-128 printable ASCII characters",
    "bad_ts": "timestamp in no recognised format",
    "ts_out_of_range": "timestamp year outside 2000..2100 (often seconds vs milliseconds)",
    "bad_qty": "quantity is not a number",
    "bad_unit": "quantity unit not recognised",
    "no_case_pack": "quantity in cases but no case pack for the SKU",
    "qty_not_integer": "quantity is not a whole number of units",
    "qty_out_of_range": "quantity outside the range allowed for the event",
    "bad_price": "unit price/cost is not a non-negative number",
    "bad_kind": "scan kind not recognised",
    "bad_location": "scan location is neither backroom nor shelf",
    "bad_number": "a catalog number is missing its range or is not a number",
    "bad_text": "name/category/aisle too long",
    "duplicate_row": "identical to an earlier row",
    "duplicate_event_id": "event id (or, without one, the same event content) seen in an earlier row",
    "double_scan": "the same scan repeated within the double-scan window",
    "superseded": "catalog entry for the same store and SKU appears again later (the later wins)",
    "invalid_record": "refused by the contract record's own validation (records.py), e.g. "
    "min_shelf_qty above shelf_capacity",
    "ts_far_future": "timestamp more than BACKROOM_MAX_FUTURE_HOURS ahead of the file's latest time "
    "(backroom/eventtime.py)",
}


# Lines of a sales export that are not a product leaving the shelf: set aside with their kind as
# the code (in the rejects file, counted apart in the summary). Matched on the SKU code or the
# product name, both compared as lower-case words ("BANK CHARGES" -> bank_charges).
NON_PRODUCT: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    # kind: (codes, names, what it is)
    "postage": (("post", "dot", "c2", "postage", "carriage", "shipping", "freight"),
                ("postage", "dotcom_postage", "carriage", "shipping", "freight", "delivery_charge"),
                "postage or carriage"),
    "fee": (("bank_charges", "amazonfee", "cruk", "fee", "service_charge", "commission"),
            ("bank_charges", "amazon_fee", "cruk_commission", "service_charge", "commission", "fee"),
            "a fee or bank charge"),
    # Single letters (M, D, S, B in UCI Online Retail) are real SKU codes elsewhere: those lines
    # are known by their name ("Manual", "Discount", ...), not by the code alone.
    "manual": ((), ("manual",), "a manual till entry"),
    "discount": (("discount", "coupon"), ("discount", "coupon"), "a discount"),
    "samples": (("samples",), ("samples",), "samples"),
    "adjustment": (("adjust", "adjustment", "adjust_bad_debt"),
                   ("adjustment", "adjust", "adjust_bad_debt"), "a manual adjustment"),
    "no_item": (("none", "null", "nan", "n_a", "void"), (), "a line without an item"),
}
SET_ASIDE_CODES: dict[str, str] = {
    **{k: f"not a product: {v[2]} (by SKU code or name)" for k, v in NON_PRODUCT.items()},
    "voucher": "not a product: a gift voucher (SKU code gift_...)",
    "stock_correction": "price 0 and a negative quantity outside a cancellation, or price 0 and no "
                        "product name: a stock correction, not a sale",
}
# Sales lines that take units back: kept apart from sales in `<stem>.returns.csv`.
RETURN_CODES: dict[str, str] = {
    "cancellation": "a line of a cancelled transaction (its id starts with C, as in C536379)",
    "return": "a negative quantity outside a cancellation (a refund or void)",
}


class CleaningError(ValueError):
    """The file as a whole cannot be cleaned (unreadable, unknown kind, bad option)."""


@dataclass
class Summary:
    input: str
    kind: Kind
    rows_in: int
    rows_out: int
    rows_rejected: int
    rejects_by_code: dict[str, int]
    outputs: dict[str, str]
    columns: dict[str, str]
    ignored_columns: list[str]
    tz: str
    date_order: str
    ts_min: str | None = None
    ts_max: str | None = None
    stores: int = 0
    skus: int = 0
    seconds: float = 0.0
    rows_per_minute: float = 0.0
    notes: list[str] = field(default_factory=list)
    # rows_in = rows_out + rows_returns + rows_set_aside + rows_rejected; set-aside rows are in
    # the rejects file too (their code says what they are), returns in `<stem>.returns.csv`.
    rows_returns: int = 0
    returns_by_code: dict[str, int] = field(default_factory=dict)
    rows_set_aside: int = 0
    set_aside_by_code: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- header handling -----------------------------------------------------------------------------


def normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


def map_columns(
    headers: Sequence[str], overrides: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Canonical field -> raw header, and the raw headers nobody claimed.

    `overrides` (field -> raw header, from `--map SOURCE=field`) are claimed first."""
    by_norm: dict[str, str] = {}
    for h in headers:
        by_norm.setdefault(normalise_header(h), h)
    mapping: dict[str, str] = {}
    claimed: set[str] = set()
    for fld, src in (overrides or {}).items():
        mapping[fld] = src
        claimed.add(src)
    for fld, aliases in ALIASES.items():
        if fld in mapping:
            continue
        for alias in aliases:
            raw = by_norm.get(alias)
            if raw is not None and raw not in claimed:
                mapping[fld] = raw
                claimed.add(raw)
                break
    # "location" names a store in sales exports and a stock location (backroom/shelf) in scans.
    if (
        "kind" in mapping and "location" not in mapping and "store_id" not in (overrides or {})
        and normalise_header(mapping.get("store_id", "")) == "location"
    ):
        mapping["location"] = mapping.pop("store_id")
    return mapping, [h for h in headers if h not in claimed]


def parse_maps(maps: Sequence[str] | None, headers: Sequence[str]) -> dict[str, str]:
    """`--map SOURCE=field` options -> {field: raw header}; SOURCE matches a header exactly or
    after normalising ("Invoice Date" = invoice_date)."""
    fields = set(ALIASES)
    by_norm = {normalise_header(h): h for h in headers}
    out: dict[str, str] = {}
    for item in maps or ():
        src, sep, fld = item.rpartition("=")
        src, fld = src.strip(), fld.strip()
        if not sep or not src or not fld:
            raise CleaningError(f"--map {item!r}: write it as SOURCE=field, e.g. --map 'Invoice Date=ts'")
        if fld not in fields:
            raise CleaningError(f"--map {item!r}: {fld!r} is not a field; fields: {', '.join(sorted(fields))}")
        raw = src if src in headers else by_norm.get(normalise_header(src))
        if raw is None:
            raise CleaningError(f"--map {item!r}: no column {src!r}; columns seen: {', '.join(headers)}")
        out[fld] = raw
    return out


def detect_kind(mapping: dict[str, str]) -> Kind:
    has = mapping.__contains__
    if has("sku") and has("kind") and has("qty"):
        return "scans"
    timed = has("ts") or has("ts_date")
    if has("sku") and (has("name") or has("category") or has("shelf_capacity")) and not has("qty") \
            and not (has("txn_id") and timed):
        return "catalog"
    # A basket log (one row per item sold, no quantity) is a sales file too.
    if has("sku") and (has("qty") or has("txn_id")) and timed:
        return "sales"
    raise CleaningError(
        "cannot tell whether this is a sales, scans or product file from its headers "
        f"(recognised: {', '.join(sorted(mapping)) or 'none'}); pass --kind"
    )


# What `--map` a file needs: the fields a kind cannot do without, and a guess from the values.
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "sales": ("sku", "ts", "qty", "store_id"),
    "scans": ("sku", "ts", "kind", "qty", "store_id"),
    "catalog": ("sku", "name", "category"),
}


def _guess_field(values: Sequence[str]) -> str | None:
    """The field a column's sample values look like (None: no idea)."""
    vals = [v.strip() for v in values if v and v.strip()]
    if not vals:
        return None

    def share(pattern: str) -> float:
        return sum(1 for v in vals if re.fullmatch(pattern, v)) / len(vals)

    date = r"(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    if share(date + r"[ T]\d{1,2}:\d{2}.*") > 0.8 or share(r"\d{10}(\.\d+)?|\d{13}") > 0.8:
        return "ts"
    if share(date) > 0.8:
        return "ts_date"
    if share(r"\d{1,2}:\d{2}(:\d{2})?(\s*[AaPp][Mm])?") > 0.8:
        return "ts_time"
    if share(r"[+-]?\d{1,4}(\.0+)?") > 0.9 and len(set(vals)) <= max(20, len(vals) // 5):
        return "qty"
    return None


def missing_fields(kind: Kind, mapping: dict[str, str], store: str | None) -> list[str]:
    need = [f for f in REQUIRED[kind] if f not in mapping]
    if kind != "catalog" and "ts" in need and "ts_date" in mapping:
        need.remove("ts")  # a date column (and a time column, when there is one) will do
    if kind == "sales" and "qty" in need and "txn_id" in mapping:
        need.remove("qty")  # a basket log: one unit per row
    if "store_id" in need and store:
        need.remove("store_id")
    return need


def unmappable_message(
    headers: Sequence[str], mapping: dict[str, str], need: Sequence[str],
    samples: dict[str, list[str]], kind: Kind | None,
) -> str:
    """Says which fields have no column, the columns seen, and the `--map` options to add."""
    free = [h for h in headers if h not in mapping.values()]
    guesses: dict[str, str] = {}
    for h in free:
        g = _guess_field(samples.get(h, []))
        if g is not None and g not in guesses:
            guesses[g] = h
    if "ts" not in guesses and "ts_date" in guesses:
        guesses["ts"] = guesses.pop("ts_date")
    suggest: list[str] = []
    left = [h for h in free if h not in guesses.values()]
    for fld in need:
        if fld == "store_id":
            suggest.append("--store ID")
            continue
        src = guesses.get(fld) or (left.pop(0) if fld == "sku" and left else None)
        suggest.append(f"--map {_shell(src or 'COLUMN')}={fld}")
    recognised = ", ".join(f"{f}={h}" for f, h in mapping.items()) or "none"
    what = f"a {kind} file" if kind else "this file"
    return (
        f"cannot map {what}: no column for {', '.join(need)}. Columns seen: {', '.join(headers)}. "
        f"Recognised: {recognised}. Add: {' '.join(suggest)}"
        + (" (--store: the file has no store column)" if "store_id" in need else "")
    )


def _shell(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_.-]+", name) else "'" + name.replace("'", "'\\''") + "'"


# --- SQL building blocks --------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


_MACROS = f"""
CREATE OR REPLACE TEMP MACRO br_v(s) AS nullif(trim(replace(s, chr(160), ' ')), '');
-- Numbers as exported: "1.234,56" and "2,49" (decimal comma), "1,234.56" and "1,000" (thousands).
CREATE OR REPLACE TEMP MACRO br_num_text(s) AS CASE
    WHEN regexp_full_match(s, '[+-]?\\d{{1,3}}(\\.\\d{{3}})+,\\d+') THEN replace(replace(s, '.', ''), ',', '.')
    WHEN regexp_full_match(s, '[+-]?[1-9]\\d{{0,2}}(,\\d{{3}})+(\\.\\d+)?') THEN replace(s, ',', '')
    WHEN regexp_full_match(s, '[+-]?\\d+,\\d+') THEN replace(s, ',', '.')
    ELSE s END;
CREATE OR REPLACE TEMP MACRO br_num(s) AS TRY_CAST(br_num_text(s) AS DOUBLE);
-- Prices may carry a currency symbol or code on either side.
CREATE OR REPLACE TEMP MACRO br_money(s) AS br_num(trim(regexp_replace(s,
    '(?i)^\\s*([$€£]|usd|eur|gbp)\\s*|\\s*([$€£]|usd|eur|gbp)\\s*$', '', 'g')));
CREATE OR REPLACE TEMP MACRO br_word(s) AS trim(regexp_replace(lower(s), '[^a-z0-9]+', '_', 'g'), '_');
CREATE OR REPLACE TEMP MACRO br_is_code(s) AS regexp_full_match(s, {_lit(CODE_RE.strip("^$"))});
-- A product name as a SKU code: "Hot chocolate" -> HOT_CHOCOLATE (the name itself is kept).
CREATE OR REPLACE TEMP MACRO br_slug(s) AS
    nullif(left(trim(regexp_replace(upper(s), '[^A-Z0-9_.-]+', '_', 'g'), '_.-'), 64), '');
CREATE OR REPLACE TEMP MACRO br_is_int(x) AS x IS NOT NULL AND x = round(x);
"""


def _naive_formats(order: Literal["dmy", "mdy"]) -> list[str]:
    return _NAIVE_COMMON + (_SLASH_DMY + _SLASH_MDY if order == "dmy" else _SLASH_MDY + _SLASH_DMY)


def _ts_expr(raw: str, tz: str, order: Literal["dmy", "mdy"], first: Sequence[str] = ()) -> str:
    """SQL turning the text timestamp `raw` into a TIMESTAMPTZ (NULL when unparseable).

    `first`: the file's own layouts, tried before the rest (`_ts_layouts`)."""
    naive = _naive_formats(order)
    naive = [f for f in first if f in naive] + [f for f in naive if f not in first]
    aware = [f for f in first if f in _AWARE] + [f for f in _AWARE if f not in first]
    spaced = f"replace({raw}, 'T', ' ')"
    zoned = f"regexp_replace({spaced}, '(?i)\\s*(Z|UTC|GMT)$', '+00:00')"
    return f"""CASE
        WHEN {raw} IS NULL THEN NULL
        WHEN regexp_full_match({raw}, '\\d{{10}}(\\.\\d+)?') THEN to_timestamp(CAST({raw} AS DOUBLE))
        WHEN regexp_full_match({raw}, '\\d{{13}}') THEN to_timestamp(CAST({raw} AS DOUBLE) / 1000)
        WHEN regexp_matches({zoned}, '[+-]\\d{{2}}:?\\d{{2}}$') AND regexp_matches({raw}, '\\d[:]\\d')
            THEN try_strptime({zoned}, {_list(aware)})
        ELSE timezone({_lit(tz)}, try_strptime({spaced}, {_list(naive)}))
    END"""


def _ts_layouts(con: duckdb.DuckDBPyConnection, ts_sql: str, order: Literal["dmy", "mdy"]) -> list[str]:
    """The layouts that parse most of a sample of the file's timestamps, best first.

    try_strptime tries a list of layouts in order, and a miss costs about as much as a hit:
    Online Retail's "12/1/2010 8:26" matched the 11th layout, 8 s of its 541,909 rows; first in
    the list, 0.1 s. Only the order changes, so every row still gets every layout."""
    spaced = "replace(s, 'T', ' ')"
    zoned = f"regexp_replace({spaced}, '(?i)\\s*(Z|UTC|GMT)$', '+00:00')"
    cands = [(f, spaced) for f in _naive_formats(order)] + [(f, zoned) for f in _AWARE]
    counts = ", ".join(f"count(try_strptime({expr}, {_lit(f)}))" for f, expr in cands)
    row = con.execute(
        f"SELECT {counts} FROM (SELECT {ts_sql} AS s FROM numbered WHERE {ts_sql} IS NOT NULL LIMIT 2000)"
    ).fetchone()
    hits = sorted(((n, i) for i, n in enumerate(row or ()) if n), key=lambda x: (-x[0], x[1]))
    return [cands[i][0] for _, i in hits]


@dataclass
class _Check:
    code: str
    cond: str  # SQL, true when the row is rejected
    reason: str  # SQL text expression


def _missing(fields: Sequence[str]) -> list[_Check]:
    # Columns ending in _raw hold the text of a field; the reason names the field itself.
    return [
        _Check("missing_field", f"{f} IS NULL", _lit(f"missing {f.removesuffix('_raw')}"))
        for f in fields
    ]


def _code_checks() -> list[_Check]:
    return [
        _Check(
            "bad_store_id", "NOT br_is_code(store_id)",
            "printf('store_id %s is not a code (1-64 of A-Z a-z 0-9 _ . -)', store_id)",
        ),
        _Check(
            "bad_sku", "NOT br_is_code(sku)",
            "printf('sku %s is not a code (1-64 of A-Z a-z 0-9 _ . -)', sku)",
        ),
    ]


def _event_checks() -> list[_Check]:
    return [
        _Check(
            "bad_event_id",
            f"event_id_src IS NOT NULL AND NOT regexp_full_match(event_id_src, {_lit(EVENT_ID_RE.strip('^$'))})",
            "printf('event_id %s is not 1-128 printable ASCII characters', event_id_src)",
        ),
        _Check("bad_ts", "ts IS NULL", "printf('ts %s is not a recognised timestamp', ts_raw)"),
        _Check(
            "ts_out_of_range",
            f"year(ts) NOT BETWEEN {records.MIN_YEAR} AND {records.MAX_YEAR}",
            f"printf('ts %s is outside the years {records.MIN_YEAR}..{records.MAX_YEAR}', ts_raw)",
        ),
        _Check("bad_qty", "qty_num IS NULL", "printf('qty %s is not a number', qty_raw)"),
        _Check(
            "bad_unit",
            f"qty_unit NOT IN {_in(EACH_UNITS + CASE_UNITS + DOZEN_UNITS)}",
            "printf('qty unit %s is not one of ea, case, dozen', qty_unit)",
        ),
        _Check(
            "no_case_pack",
            f"qty_unit IN {_in(CASE_UNITS)} AND (case_pack IS NULL OR case_pack < 1)",
            "printf('qty %s is in cases but SKU %s has no case pack (add a case_pack column or --catalog)', qty_raw, sku)",
        ),
        _Check(
            "qty_not_integer", "NOT br_is_int(qty_units)",
            "printf('qty %s is not a whole number of units', qty_raw)",
        ),
    ]


def _non_product_checks() -> list[_Check]:
    out = [
        _Check(
            kind, " OR ".join(([f"sku_word IN {_in(codes)}"] if codes else [])
                              + ([f"name_word IN {_in(names)}"] if names else [])),
            f"printf('%s (%s): {what}, not a product', sku_src, coalesce(name, ''))",
        )
        for kind, (codes, names, what) in NON_PRODUCT.items()
    ]
    out.append(_Check("voucher", "sku_word LIKE 'gift\\_%' ESCAPE '\\'",
                      "printf('%s: a gift voucher, not a product', sku_src)"))
    return out


def _checks(kind: Kind) -> list[_Check]:
    if kind == "sales":
        return [
            *_missing(["store_id", "sku", "ts_raw", "qty_raw"]),
            *_non_product_checks(),
            *_code_checks(),
            *_event_checks(),
            _Check(
                "qty_out_of_range", f"qty_units = 0 OR abs(qty_units) > {MAX_QTY}",
                f"printf('qty %s must be 1..{MAX_QTY} units (a negative qty is a return)', qty_raw)",
            ),
            _Check(
                "bad_price", "price_raw IS NOT NULL AND (unit_price IS NULL OR NOT isfinite(unit_price) OR unit_price < 0)",
                "printf('unit_price %s is not a non-negative number', price_raw)",
            ),
            _Check(
                "stock_correction",
                "unit_price = 0 AND ((qty_units < 0 AND NOT cancelled) OR (has_name AND name IS NULL))",
                "printf('qty %s at price 0%s: a stock correction, not a sale', qty_raw, "
                "CASE WHEN name IS NULL THEN ' without a product name' ELSE ' outside a cancellation' END)",
            ),
        ]
    if kind == "scans":
        return [
            *_missing(["store_id", "sku", "ts_raw", "kind_raw", "qty_raw"]),
            *_code_checks(),
            _Check(
                "bad_kind", "kind IS NULL",
                "printf('scan kind %s is not receive, move_to_shelf, count or adjust', kind_raw)",
            ),
            _Check(
                "bad_location", "location IS NULL",
                "printf('location %s is neither backroom nor shelf', location_raw)",
            ),
            *_event_checks(),
            _Check(
                "qty_out_of_range",
                f"""CASE kind WHEN 'receive' THEN qty_units NOT BETWEEN 1 AND {MAX_QTY}
                    WHEN 'move_to_shelf' THEN qty_units NOT BETWEEN 1 AND {MAX_QTY}
                    WHEN 'count' THEN qty_units NOT BETWEEN 0 AND {MAX_QTY}
                    ELSE qty_units = 0 OR abs(qty_units) > {MAX_QTY} END""",
                f"""printf('qty %s out of range for %s (%s)', qty_raw, kind, CASE kind
                    WHEN 'count' THEN '0..{MAX_QTY}' WHEN 'adjust' THEN 'non-zero, |qty| <= {MAX_QTY}'
                    ELSE '1..{MAX_QTY}' END)""",
            ),
        ]
    return [
        *_missing(["sku", "name", "category"]),
        _Check(
            "bad_store_id", "store_id <> '*' AND NOT br_is_code(store_id)",
            "printf('store_id %s is not a code (1-64 of A-Z a-z 0-9 _ . -) or *', store_id)",
        ),
        _Check(
            "bad_sku", "NOT br_is_code(sku)",
            "printf('sku %s is not a code (1-64 of A-Z a-z 0-9 _ . -)', sku)",
        ),
        _Check(
            "bad_text", "length(name) > 200 OR length(category) > 100 OR length(aisle) > 50",
            "'name over 200, category over 100 or aisle over 50 characters'",
        ),
        _Check(
            "bad_number",
            f"NOT br_is_int(shelf_capacity) OR shelf_capacity NOT BETWEEN 1 AND {MAX_QTY}",
            f"printf('shelf_capacity %s must be a whole number 1..{MAX_QTY}', cap_raw)",
        ),
        _Check(
            "bad_number",
            f"NOT br_is_int(min_shelf_qty) OR min_shelf_qty NOT BETWEEN 0 AND {MAX_QTY}",
            f"printf('min_shelf_qty %s must be a whole number 0..{MAX_QTY}', min_raw)",
        ),
        _Check(
            "bad_number",
            "lead_time_hours IS NULL OR lead_time_hours NOT BETWEEN 0 AND 8760",
            "printf('lead time %s must be 0..8760 hours (suffix h or d allowed)', lead_raw)",
        ),
        _Check(
            "bad_number",
            f"NOT br_is_int(case_pack) OR case_pack NOT BETWEEN 1 AND {MAX_QTY}",
            f"printf('case_pack %s must be a whole number 1..{MAX_QTY}', pack_raw)",
        ),
        _Check(
            "bad_price", "cost_raw IS NOT NULL AND (unit_cost IS NULL OR NOT isfinite(unit_cost) OR unit_cost < 0)",
            "printf('unit_cost %s is not a non-negative number', cost_raw)",
        ),
    ]


def _case(checks: Sequence[_Check], attr: Literal["code", "reason"]) -> str:
    whens = "\n".join(
        f"        WHEN {c.cond} THEN {_lit(c.code) if attr == 'code' else c.reason}" for c in checks
    )
    # A NULL condition (e.g. comparing a NULL) is not a rejection; missing fields are checked first.
    return f"CASE\n{whens}\n        ELSE NULL END"


def _word_case(expr: str, words: dict[str, tuple[str, ...]]) -> str:
    whens = " ".join(f"WHEN {expr} IN {_in(ws)} THEN {_lit(k)}" for k, ws in words.items())
    return f"CASE {whens} ELSE NULL END"


# --- the cleaner ------------------------------------------------------------------------------------


def _read_options(encoding: str, delimiter: str | None) -> str:
    opts = ["all_varchar = true", "header = true", "store_rejects = true", f"encoding = {_lit(encoding)}"]
    if delimiter:
        opts.append(f"delim = {_lit(delimiter)}")
    return ", ".join(opts)


def _date_order(con: duckdb.DuckDBPyConnection, ts_sql: str, requested: DateOrder) -> Literal["dmy", "mdy"]:
    """Decide day/month order of slash dates from the file's own evidence (a day > 12)."""
    if requested != "auto":
        return requested
    row = con.execute(
        f"""SELECT
            count(*) FILTER (WHERE TRY_CAST(m[1] AS INT) > 12 AND TRY_CAST(m[2] AS INT) <= 12),
            count(*) FILTER (WHERE TRY_CAST(m[2] AS INT) > 12 AND TRY_CAST(m[1] AS INT) <= 12)
        FROM (SELECT regexp_extract({ts_sql}, '^(\\d{{1,2}})/(\\d{{1,2}})/\\d{{4}}', ['d1', 'd2']) AS s,
                     [struct_extract(s, 'd1'), struct_extract(s, 'd2')] AS m FROM numbered)"""
    ).fetchone()
    dmy, mdy = (row or (0, 0))
    # US POS exports dominate; day-first only when the data says so.
    return "dmy" if dmy > mdy else "mdy"


def clean(
    raw_csv: Path | str,
    out_dir: Path | str,
    fmt: Format = "parquet",
    *,
    kind: Kind | None = None,
    tz: str = "UTC",
    date_order: DateOrder = "auto",
    double_scan_s: float = 10.0,
    catalog: Path | str | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    threads: int | None = None,
    maps: Sequence[str] | None = None,
    store: str | None = None,
    max_future_hours: float = 24.0,
) -> Summary:
    """Validate, normalise and deduplicate one raw CSV; write data, rejects and summary files.

    `maps`: `SOURCE=field` overrides of the header mapping; `store`: the store of a file without
    a store column (and of its rows with an empty one). `max_future_hours`
    (BACKROOM_MAX_FUTURE_HOURS; 0 = off): rows further ahead of the file's own latest time are
    rejected (`ts_far_future`, backroom/eventtime.py)."""
    started = time.perf_counter()
    raw_path = Path(raw_csv)
    if not raw_path.is_file():
        raise CleaningError(f"{raw_path}: no such file")
    if fmt not in ("parquet", "csv"):
        raise CleaningError(f"format must be parquet or csv, not {fmt!r}")
    if store is not None and not re.fullmatch(CODE_RE, store):
        raise CleaningError(f"--store {store!r} is not a code (1-64 of A-Z a-z 0-9 _ . -)")
    try:
        ZoneInfo(tz)
    except Exception:
        raise CleaningError(f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = raw_path.name.split(".")[0]
    data_path = out / f"{stem}.{fmt}"
    rejects_path = out / f"{stem}.rejects.csv"
    summary_path = out / f"{stem}.summary.json"
    returns_path = out / f"{stem}.returns.csv"

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # a library call: nothing on the terminal
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(_MACROS)
        try:
            con.execute(
                f"CREATE TEMP TABLE raw AS SELECT * FROM read_csv({_lit(str(raw_path))}, "
                f"{_read_options(encoding, delimiter)})"
            )
        except duckdb.Error as exc:
            raise CleaningError(f"{raw_path}: not readable as CSV: {exc}") from None
        headers = [r[0] for r in con.execute("DESCRIBE raw").fetchall()]
        mapping, ignored = map_columns(headers, parse_maps(maps, headers))
        try:
            kind = kind or detect_kind(mapping)
            if kind not in KINDS:
                raise CleaningError(f"kind must be one of {', '.join(KINDS)}")
            need = missing_fields(kind, mapping, store)
        except CleaningError as exc:
            if "cannot tell" not in str(exc):
                raise
            kind, need = None, [f for f in ("sku", "ts", "qty") if f not in mapping]
            if not need:
                raise
            if "store_id" not in mapping and store is None:
                need.append("store_id")
        if need:
            samples = {h: [r[0] for r in con.execute(
                f"SELECT {_ident(h)} FROM raw WHERE {_ident(h)} IS NOT NULL LIMIT 200").fetchall()]
                for h in headers}
            msg = unmappable_message(headers, mapping, need, samples, kind)
            if kind is None:
                msg = "cannot tell whether this is a sales, scans or product file from its headers; " + msg
            raise CleaningError(msg)
        assert kind is not None
        _numbered(con, headers)
        position = {h: i for i, h in enumerate(headers)}
        opts = _Options(store=store, basket=kind == "sales" and "qty" not in mapping)
        order = _parse(con, kind, {f: position[h] for f, h in mapping.items()}, tz, date_order, catalog, opts)
        _dedupe(con, kind, len(headers), double_scan_s, opts)
        _contract_checks(con, kind, max_future_hours)
        return _write(
            con, kind, raw_path, data_path, rejects_path, summary_path, fmt, headers, mapping,
            ignored, tz, order, started, returns_path, opts,
        )
    finally:
        con.close()


@dataclass
class _Options:
    store: str | None = None
    basket: bool = False  # no quantity column: one unit per row
    names: bool = False  # the SKU column holds product names, turned into codes
    notes: list[str] = field(default_factory=list)


def _numbered(con: duckdb.DuckDBPyConnection, headers: Sequence[str]) -> None:
    """Give every parsed record its data-row number and collect the lines DuckDB could not parse.

    DuckDB skips malformed lines (kept in `reject_errors`), so the i-th parsed record sits after
    every skipped line that precedes it: an ASOF join adds that count back. Raw columns become
    c0, c1, ... so a header named like a contract field cannot collide with the parsed field.
    """
    con.execute(
        """CREATE TEMP TABLE bad_lines AS
           SELECT line, first(csv_line ORDER BY column_idx) AS csv_line,
                  first(error_type::VARCHAR || ': ' || error_message ORDER BY column_idx) AS error
           FROM reject_errors GROUP BY line"""
    )
    con.execute(
        """CREATE TEMP TABLE bad_marks AS
           SELECT CAST(line AS BIGINT) - j - 1 AS good_before, j
           FROM (SELECT line, row_number() OVER (ORDER BY line) AS j FROM bad_lines)"""
    )
    raw_cols = ", ".join(f"r.{_ident(h)} AS c{i}" for i, h in enumerate(headers))
    if not con.execute("SELECT count(*) FROM bad_marks").fetchone()[0]:  # type: ignore[index]
        con.execute(
            f"""CREATE TEMP TABLE numbered AS
                SELECT CAST(r.rowid + 1 AS BIGINT) AS row_no, {raw_cols} FROM (SELECT rowid, * FROM raw) r"""
        )
        return
    con.execute(
        f"""CREATE TEMP TABLE numbered AS
            SELECT CAST(r.rowid + 1 + coalesce(b.j, 0) AS BIGINT) AS row_no, {raw_cols}
            FROM (SELECT rowid, * FROM raw) r
            ASOF LEFT JOIN bad_marks b ON r.rowid + 1 > b.good_before"""
    )


def _parse(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    mapping: dict[str, int],
    tz: str,
    date_order: DateOrder,
    catalog: Path | str | None,
    opts: _Options | None = None,
) -> Literal["dmy", "mdy"]:
    opts = opts or _Options()

    def v(fld: str) -> str:
        return f"br_v(c{mapping[fld]})" if fld in mapping else "CAST(NULL AS VARCHAR)"

    if "ts" in mapping or kind == "catalog":
        ts_raw = v("ts")
    else:  # separate date and time columns
        ts_raw = f"nullif(concat_ws(' ', {v('ts_date')}, {v('ts_time')}), '')"
    # Excel marks text cells with a leading apostrophe ("'000123"); it is not part of the code.
    sku = f"regexp_replace({v('sku')}, '^''', '')"
    sku_src = sku
    store = v("store_id")
    if opts.store is not None:
        store = f"coalesce({store}, {_lit(opts.store)})"
    if kind == "sales" and "sku" in mapping:
        # A column of product names ("Hot chocolate") used as item codes: every value becomes a
        # code (HOT_CHOCOLATE) and the name is kept. Decided for the whole file, so "Bread" and
        # "Hot chocolate" end up alike; a few odd values in a column of codes stay as they are.
        # Names are written like words ("Bread", "Hot chocolate"): most values have lower-case
        # letters, and some have spaces. A column of upper-case codes with a typo ("MILK 1L")
        # stays a column of codes, and the typo is rejected as bad_sku.
        row = con.execute(
            f"""SELECT count(DISTINCT s) FILTER (WHERE NOT br_is_code(s)), count(DISTINCT s),
                       count(DISTINCT s) FILTER (WHERE regexp_matches(s, '[a-z]'))
                FROM (SELECT {sku} AS s FROM numbered)"""
        ).fetchone()
        bad, total, lower = row or (0, 0, 0)
        opts.names = bool(total) and bad >= max(1, 0.1 * total) and lower >= 0.5 * total
        if opts.names:
            sku = f"br_slug({sku_src})"
            opts.notes.append(
                f"the SKU column holds product names ({bad} of {total} values are not codes): each "
                "becomes a code (upper case, other characters -> _) and the name is kept"
            )

    if kind == "catalog":
        lead_m = f"regexp_extract({v('lead_time_hours')}, '^([0-9.,]+)\\s*([A-Za-z]*)$', ['n', 'u'])"
        lead_hours = f"""CASE
            WHEN {v('lead_time_hours')} IS NOT NULL THEN br_num(struct_extract(lead_m, 'n')) * CASE
                WHEN lower(struct_extract(lead_m, 'u')) IN ('', 'h', 'hr', 'hrs', 'hour', 'hours') THEN 1
                WHEN lower(struct_extract(lead_m, 'u')) IN ('d', 'day', 'days') THEN 24 ELSE NULL END
            ELSE br_num({v('lead_time_days')}) * 24 END"""
        lead_raw = f"coalesce({v('lead_time_hours')}, {v('lead_time_days')} || ' d')"
        con.execute(
            f"""CREATE TEMP TABLE parsed AS
            SELECT *, {_case(_checks('catalog'), 'code')} AS code,
                      {_case(_checks('catalog'), 'reason')} AS reason
            FROM (
                SELECT n.*, coalesce({store}, '*') AS store_id, {sku} AS sku,
                       {v('name')} AS name, {v('category')} AS category, {v('aisle')} AS aisle,
                       {v('shelf_capacity')} AS cap_raw, br_num(cap_raw) AS shelf_capacity,
                       {v('min_shelf_qty')} AS min_raw, br_num(min_raw) AS min_shelf_qty,
                       {lead_m} AS lead_m, {lead_raw} AS lead_raw, {lead_hours} AS lead_time_hours,
                       {v('case_pack')} AS pack_raw, br_num(pack_raw) AS case_pack,
                       {v('unit_cost')} AS cost_raw, br_money(cost_raw) AS unit_cost,
                       CAST(NULL AS TIMESTAMPTZ) AS ts
                FROM numbered n)"""
        )
        return "mdy"

    order = _date_order(con, v("ts") if "ts" in mapping else v("ts_date"), date_order)
    ts = _ts_expr("ts_raw", tz, order, _ts_layouts(con, ts_raw, order))

    # Case pack: a column of the file wins, then the processed catalog (store row, then '*').
    pack_join = ""
    pack = v("case_pack")
    if catalog is not None:
        cat = Path(catalog)
        reader = "read_parquet" if cat.suffix == ".parquet" else "read_csv"
        try:
            con.execute(
                f"""CREATE TEMP TABLE cat_pack AS SELECT CAST(store_id AS VARCHAR) AS store_id,
                    CAST(sku AS VARCHAR) AS sku, TRY_CAST(case_pack AS DOUBLE) AS pack
                    FROM {reader}({_lit(str(cat))})
                    -- one row per key, or the join would multiply sales rows
                    QUALIFY row_number() OVER (PARTITION BY store_id, sku) = 1"""
            )
        except duckdb.Error as exc:
            raise CleaningError(f"catalog {cat}: {exc}") from None
        pack_join = f"""LEFT JOIN cat_pack cs ON cs.store_id = {store} AND cs.sku = {sku}
                        LEFT JOIN cat_pack ca ON ca.store_id = '*' AND ca.sku = {sku}"""
        pack = f"coalesce(br_num({v('case_pack')}), cs.pack, ca.pack)"
    else:
        pack = f"br_num({pack})"

    kind_cols = ""
    if kind == "scans":
        kind_word = f"br_word({v('kind')})"
        all_kinds = dict(KIND_WORDS)
        all_kinds["adjust"] = KIND_WORDS["adjust"] + NEGATIVE_ADJUST_WORDS
        kind_cols = f""", {v('kind')} AS kind_raw, {_word_case(kind_word, all_kinds)} AS kind,
            {kind_word} IN {_in(NEGATIVE_ADJUST_WORDS)} AS shrink_word,
            {v('location')} AS location_raw,
            CASE WHEN location_raw IS NULL THEN 'backroom'
                 ELSE {_word_case('br_word(location_raw)', LOCATION_WORDS)} END AS location"""
    else:
        # Basket logs: no quantity column, one unit per row. Lines are numbered within their
        # transaction; that number (or the file's own line id) makes the event id.
        txn = v("txn_id")
        name_src = v("name")
        if opts.names:
            name_src = f"coalesce({name_src}, {sku_src})"
        kind_cols = f""", {v('unit_price')} AS price_raw, br_money(price_raw) AS unit_price,
            {v('register_id')} AS register_id, {txn} AS txn_id, {sku_src} AS sku_src,
            br_word({sku_src}) AS sku_word, {name_src} AS name, br_word(name) AS name_word,
            {'true' if 'name' in mapping else 'false'} AS has_name,
            coalesce(regexp_matches({txn}, '^[Cc][0-9]'), false) AS cancelled"""
    qty_src = "'1'" if opts.basket else v("qty")
    event_id = v("event_id")
    if "event_id" not in mapping and "txn_id" in mapping and kind == "sales":
        event_id = (f"{v('txn_id')} || '-' || "
                    f"CAST(row_number() OVER (PARTITION BY {v('txn_id')} ORDER BY n.row_no) AS VARCHAR)")

    qty_sign = "CASE WHEN shrink_word AND qty_num > 0 THEN -1 ELSE 1 END" if kind == "scans" else "1"
    returns = ""
    if kind == "sales":
        returns = """, CASE WHEN code IS NOT NULL THEN NULL WHEN cancelled THEN 'cancellation'
                         WHEN qty_units < 0 THEN 'return' END AS ret_code"""
    # Layered on purpose: a column alias used in the same SELECT is inlined as its expression,
    # so one layer per step keeps each regular expression and timestamp parse to once per row
    # (one layer: Online Retail's 541,909 rows took 19 s here, mostly re-parsing).
    con.execute(
        f"""CREATE TEMP TABLE pre AS
        SELECT *, qty_num * {qty_sign} * CASE
                       WHEN qty_unit IN {_in(EACH_UNITS)} THEN 1
                       WHEN qty_unit IN {_in(DOZEN_UNITS)} THEN 12
                       WHEN qty_unit IN {_in(CASE_UNITS)} THEN case_pack END AS qty_units
        FROM (
          SELECT *, br_num(nullif(struct_extract(qty_m, 'n'), '')) AS qty_num,
                 lower(coalesce(nullif(struct_extract(qty_m, 'u'), ''), uom_raw, '')) AS qty_unit
          FROM (
            SELECT *, {ts} AS ts,
                   regexp_extract(qty_raw, '^([+-]?[0-9][0-9.,]*)\\s*([A-Za-z]*)\\.?$', ['n', 'u']) AS qty_m
            FROM (
              SELECT n.*, {event_id} AS event_id_src, {store} AS store_id, {sku} AS sku,
                     {ts_raw} AS ts_raw, {qty_src} AS qty_raw, {v('uom')} AS uom_raw,
                     {pack} AS case_pack
                     {kind_cols}
              FROM numbered n {pack_join}))) """
    )
    con.execute(
        f"""CREATE TEMP TABLE parsed AS SELECT * {returns} FROM (
            SELECT *, {_case(_checks(kind), 'code')} AS code, {_case(_checks(kind), 'reason')} AS reason
            FROM pre)"""
    )
    con.execute("DROP TABLE pre")
    return order


def _dedupe(con: duckdb.DuckDBPyConnection, kind: Kind, n_cols: int, window_s: float,
            opts: _Options | None = None) -> None:
    """Mark duplicates among otherwise valid rows, in order: identical rows, repeated event ids
    (or, without ids, repeated event content), double scans; catalog rows superseded later.

    In a basket log (no quantity column) identical rows inside one transaction are units sold;
    an identical row is a duplicate only when its transaction (or, without one, its timestamp)
    was already complete: it shows up again after other transactions (a file exported twice)."""
    opts = opts or _Options()
    raw_cols = ", ".join(f"c{i}" for i in range(n_cols))
    if opts.basket:
        key = "coalesce(txn_id, ts_raw)"
        con.execute(
            f"""CREATE TEMP TABLE d1 AS SELECT * EXCLUDE (run, first_run, first_row) REPLACE (
                    CASE WHEN code IS NULL AND first_run < run THEN 'duplicate_row' ELSE code END AS code,
                    CASE WHEN code IS NULL AND first_run < run
                         THEN printf('identical to row %d, whose transaction ended before', first_row)
                         ELSE reason END AS reason)
                FROM (SELECT *, min(run) OVER (PARTITION BY code IS NULL, {raw_cols}) AS first_run,
                             min(row_no) OVER (PARTITION BY code IS NULL, {raw_cols}) AS first_row
                      FROM (SELECT *, sum(CASE WHEN new_block THEN 1 ELSE 0 END)
                                      OVER (ORDER BY row_no) AS run
                            FROM (SELECT *, {key} IS DISTINCT FROM lag({key}) OVER (ORDER BY row_no)
                                            AS new_block FROM parsed)))"""
        )
        units = con.execute(
            f"""SELECT count(*) - count(DISTINCT ({raw_cols})) FROM d1 WHERE code IS NULL"""
        ).fetchone()
        opts.notes.append(
            "no quantity column: one unit per row; identical rows within one transaction are "
            f"units sold, not duplicates ({units[0] if units else 0} such rows); a transaction "
            "repeated after others (a file exported twice) is a duplicate"
        )
    else:
        con.execute(
            f"""CREATE TEMP TABLE d1 AS SELECT * REPLACE (
                    CASE WHEN code IS NULL AND first_row < row_no THEN 'duplicate_row' ELSE code END AS code,
                    CASE WHEN code IS NULL AND first_row < row_no
                         THEN printf('identical to row %d', first_row) ELSE reason END AS reason)
                FROM (SELECT *, min(row_no) OVER (PARTITION BY code IS NULL, {raw_cols}) AS first_row
                      FROM parsed)"""
        )
    if kind == "catalog":
        con.execute(
            """CREATE TEMP TABLE cleaned AS SELECT * REPLACE (
                CASE WHEN code IS NULL AND last_row > row_no THEN 'superseded' ELSE code END AS code,
                CASE WHEN code IS NULL AND last_row > row_no
                     THEN printf('sku %s for store %s appears again at row %d (the later row wins)',
                                 sku, store_id, last_row) ELSE reason END AS reason)
            FROM (SELECT *, max(row_no) OVER (PARTITION BY code IS NULL, store_id, sku) AS last_row
                  FROM d1)"""
        )
        return
    # Without a source id the event id is a hash of the normalised content, so re-cleaning the
    # same export yields the same ids and replays stay idempotent downstream.
    content = (
        "store_id, sku, strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), CAST(qty_units AS BIGINT), "
        + ("kind, location" if kind == "scans" else "unit_price, register_id")
    )
    if kind == "sales":
        # Two invoices may sell the same units of one SKU in the same minute.
        content += ", txn_id"
    prefix = "scan" if kind == "scans" else "sale"
    con.execute(
        f"""CREATE TEMP TABLE d2 AS SELECT * REPLACE (
                CASE WHEN code IS NULL AND first_id_row < row_no THEN 'duplicate_event_id' ELSE code END AS code,
                CASE WHEN code IS NULL AND first_id_row < row_no
                     THEN printf('event_id %s already seen at row %d', event_id, first_id_row)
                     ELSE reason END AS reason)
            FROM (SELECT *, min(row_no) OVER (PARTITION BY code IS NULL, event_id) AS first_id_row
                  FROM (SELECT *, coalesce(event_id_src,
                            '{prefix}-' || substr(md5(concat_ws('|', {content})), 1, 24)) AS event_id
                        FROM d1))"""
    )
    if kind != "scans":
        con.execute("ALTER TABLE d2 RENAME TO cleaned")
        return
    con.execute(
        f"""CREATE TEMP TABLE cleaned AS SELECT * REPLACE (
                CASE WHEN is_double THEN 'double_scan' ELSE code END AS code,
                CASE WHEN is_double THEN printf('same %s of %d as row %d, %s s earlier',
                        kind, CAST(qty_units AS BIGINT), prev_row, CAST(round(gap_s, 1) AS VARCHAR))
                     ELSE reason END AS reason)
            FROM (SELECT *, code IS NULL AND gap_s <= {float(window_s)} AS is_double
                  FROM (SELECT *,
                        lag(row_no) OVER w AS prev_row,
                        epoch(ts) - epoch(lag(ts) OVER w) AS gap_s
                        FROM d2
                        WINDOW w AS (PARTITION BY code IS NULL, store_id, sku, kind, qty_units, location
                                     ORDER BY ts, row_no)))"""
    )


def _write(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    raw_path: Path,
    data_path: Path,
    rejects_path: Path,
    summary_path: Path,
    fmt: Format,
    headers: Sequence[str],
    mapping: dict[str, str],
    ignored: list[str],
    tz: str,
    order: str,
    started: float,
    returns_path: Path | None = None,
    opts: _Options | None = None,
) -> Summary:
    opts = opts or _Options()
    cols = OUTPUT_COLUMNS[kind]
    sales = kind == "sales"
    if sales and (opts.names or "name" in mapping):
        cols = (*cols, "name")  # the product name as exported, next to the code made from it
    iso = """CASE WHEN date_part('microseconds', ts) % 1000000 = 0
                  THEN strftime(ts, '%Y-%m-%dT%H:%M:%SZ') ELSE strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') END"""
    typed = {
        "qty": "CAST(qty_units AS INTEGER) AS qty",
        "shelf_capacity": "CAST(shelf_capacity AS INTEGER) AS shelf_capacity",
        "min_shelf_qty": "CAST(min_shelf_qty AS INTEGER) AS min_shelf_qty",
        "case_pack": "CAST(case_pack AS INTEGER) AS case_pack",
        "ts": f"{iso} AS ts" if fmt == "csv" else "ts",
    }
    select = ", ".join(typed.get(c, c) for c in cols)
    order_by = "ts, row_no" if kind != "catalog" else "row_no"
    if fmt == "parquet":
        copy_opts = "FORMAT parquet, COMPRESSION zstd"
    else:
        copy_opts = "FORMAT csv, HEADER true"
    keep = "code IS NULL AND ret_code IS NULL" if sales else "code IS NULL"
    con.execute(
        f"COPY (SELECT {select} FROM cleaned WHERE {keep} ORDER BY {order_by}) "
        f"TO {_lit(str(data_path))} ({copy_opts})"
    )
    if sales and returns_path is not None:
        con.execute(
            f"""COPY (SELECT row_no AS row, ret_code AS code,
                    CASE ret_code WHEN 'cancellation' THEN printf('transaction %s is cancelled', txn_id)
                         ELSE printf('qty %s is negative', qty_raw) END AS reason,
                    event_id, {iso} AS ts, store_id, sku, CAST(abs(qty_units) AS INTEGER) AS qty_returned,
                    unit_price, txn_id
                FROM cleaned WHERE code IS NULL AND ret_code IS NOT NULL ORDER BY ts, row_no)
                TO {_lit(str(returns_path))} (FORMAT csv, HEADER true)"""
        )
    raw_json = "to_json(struct_pack(" + ", ".join(f"{_ident(h)} := c{i}" for i, h in enumerate(headers)) + "))"
    con.execute(
        f"""COPY (
            SELECT row_no AS row, code, reason, CAST({raw_json} AS VARCHAR) AS raw
            FROM cleaned WHERE code IS NOT NULL
            UNION ALL
            SELECT CAST(line AS BIGINT) - 1, 'csv_malformed', error, csv_line FROM bad_lines
            ORDER BY row) TO {_lit(str(rejects_path))} (FORMAT csv, HEADER true)"""
    )
    ts_stats = (
        "min(ts) FILTER (WHERE code IS NULL), max(ts) FILTER (WHERE code IS NULL)"
        if kind != "catalog" else "NULL, NULL"
    )
    ts_stats = ts_stats.replace("code IS NULL", keep)
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE {keep}), count(*) FILTER (WHERE code IS NOT NULL),
                   {ts_stats}, count(DISTINCT store_id) FILTER (WHERE {keep}),
                   count(DISTINCT sku) FILTER (WHERE {keep})
            FROM cleaned"""
    ).fetchone()
    assert row is not None
    n_ok, n_bad, ts_min, ts_max, n_stores, n_skus = row
    returns_by_code: dict[str, int] = {}
    if sales:
        returns_by_code = dict(con.execute(
            """SELECT ret_code, count(*) FROM cleaned WHERE code IS NULL AND ret_code IS NOT NULL
               GROUP BY 1 ORDER BY 2 DESC""").fetchall())
    n_malformed = con.execute("SELECT count(*) FROM bad_lines").fetchone()[0]  # type: ignore[index]
    by_code = dict(
        con.execute(
            "SELECT code, count(*) FROM cleaned WHERE code IS NOT NULL GROUP BY code ORDER BY 2 DESC"
        ).fetchall()
    )
    if n_malformed:
        by_code["csv_malformed"] = n_malformed
    aside = {c: n for c, n in by_code.items() if c in SET_ASIDE_CODES}
    by_code = {c: n for c, n in by_code.items() if c not in SET_ASIDE_CODES}
    n_returns = sum(returns_by_code.values())
    seconds = time.perf_counter() - started
    rows_in = n_ok + n_returns + n_bad + n_malformed
    summary = Summary(
        input=str(raw_path),
        kind=kind,
        rows_in=rows_in,
        rows_out=n_ok,
        rows_rejected=n_bad + n_malformed - sum(aside.values()),
        rejects_by_code=by_code,
        rows_returns=n_returns,
        returns_by_code=returns_by_code,
        rows_set_aside=sum(aside.values()),
        set_aside_by_code=aside,
        outputs={"data": str(data_path), "rejects": str(rejects_path), "summary": str(summary_path)}
        | ({"returns": str(returns_path)} if sales and returns_path is not None else {}),
        columns={k: v for k, v in mapping.items()},
        ignored_columns=ignored,
        tz=tz,
        date_order=order if kind != "catalog" else "n/a",
        ts_min=ts_min.isoformat().replace("+00:00", "Z") if ts_min else None,
        ts_max=ts_max.isoformat().replace("+00:00", "Z") if ts_max else None,
        stores=n_stores,
        skus=n_skus,
        seconds=round(seconds, 3),
        rows_per_minute=round(rows_in / seconds * 60) if seconds > 0 else 0.0,
        notes=opts.notes,
    )
    summary_path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return summary


# --- rules shared with the ingest API and the worker ----------------------------------------------


def _contract_checks(con: duckdb.DuckDBPyConnection, kind: Kind, max_future_hours: float) -> None:
    """Mark accepted rows that the contract's shared rules refuse: catalog rows through
    `records.CatalogSku` itself (the API's validation), events by the far-future bound."""
    if kind == "catalog":
        cols = ["sku", "name", "category", "shelf_capacity", "min_shelf_qty", "lead_time_hours",
                "case_pack", "unit_cost", "aisle"]
        cur = con.execute(f"SELECT row_no, {', '.join(cols)} FROM cleaned WHERE code IS NULL")
        bad: list[tuple[int, str]] = []
        for row_no, *values in cur.fetchall():
            entry = {c: v for c, v in zip(cols, values, strict=True) if v is not None}
            for c in ("shelf_capacity", "min_shelf_qty", "case_pack"):
                entry[c] = int(entry[c])
            try:
                records.validated(records.CatalogSku, entry)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                errors = getattr(exc, "errors", None)
                msg = "; ".join(e["msg"] for e in errors()) if callable(errors) else str(exc)
                bad.append((row_no, msg.removeprefix("Value error, ")))
        if bad:
            con.executemany(
                "UPDATE cleaned SET code = 'invalid_record', reason = ? WHERE row_no = ?",
                [(msg, row_no) for row_no, msg in bad],
            )
        return
    n = con.execute("SELECT count(*) FROM cleaned WHERE code IS NULL").fetchone()[0]  # type: ignore[index]
    latest = con.execute(
        "SELECT ts FROM cleaned WHERE code IS NULL ORDER BY ts DESC LIMIT ?", [2 * reference_rank(n)]
    ).fetchall()
    bound = file_bound([r[0] for r in latest], n, max_future_hours)
    if bound is None:
        return
    ref, allowed = bound
    con.execute(
        """UPDATE cleaned SET code = 'ts_far_future', reason = printf(
                'far-future ts: %s is %.1f h ahead of the file''s latest time %s (allowed %.1f h: '
                || 'BACKROOM_MAX_FUTURE_HOURS plus the spread of its latest rows)', ts_raw,
                (epoch(ts) - epoch($ref)) / 3600.0, strftime($ref, '%Y-%m-%dT%H:%M:%SZ'), $allowed)
            WHERE code IS NULL AND epoch(ts) - epoch($ref) > $allowed * 3600.0""",
        {"ref": ref, "allowed": allowed},
    )
