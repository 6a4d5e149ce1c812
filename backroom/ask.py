"""Questions in plain words -> an intent with slots -> one parameterised read-only SQL over history.

Run: `backroom ask "What do I need to restock today?" [--json]`, or `GET /api/ask?q=...` on the
dashboard (the route is `dashboard/ask_api.py`). From Python: `ask("reorder list for store S001", HistoryStore(path), settings)`.

Offline by default: a rule parser (`parse`) recognises the intents below and fills the slots
(store, SKU or category, horizon in hours, period, alert type, limit) from the question and the
stores/SKUs/categories present in the history. Each intent has one SQL template whose values are
bound as parameters, never pasted in. "Today" is the latest event-time day in the data (not the
wall clock), so a replayed history answers the same way every time.

When `settings.llm_base_url` is set and the rules do not understand a question, an
OpenAI-compatible endpoint may write the SQL; it runs only if it is exactly one SELECT over the
known tables and views (checked on DuckDB's own parse tree), on a read-only connection without
file access, with a time limit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import orjson

from backroom.history import RELATIONS, TABLES, VIEWS, HistoryBusy, HistoryStore
from backroom.records import SEVERITY_RANK
from backroom.settings import Settings

MAX_QUESTION = 500
DEFAULT_LIMIT = 50
QUERY_TIMEOUT_S = 10.0

INTENTS: dict[str, str] = {
    "restock_today": "today's restock plan: shelf moves, items to order or expedite, items at risk later today",
    "at_risk": "SKUs projected to run out within a horizon (default 48 h)",
    "reorder_list": "open REORDER alerts with the quantity to order",
    "phantom_stock": "open PHANTOM_STOCK alerts: records say stock, the camera sees a gap",
    "worst_stores": "stores ranked by open alerts, out-of-stocks and SKUs at risk",
    "sku_status": "one SKU (or category): shelf, backroom, demand, hours left, open alerts",
    "top_sellers": "units sold per SKU over a period (today by default)",
    "out_of_stock": "SKUs out of stock now (shelf and backroom empty, or empty shelves)",
    "open_alerts": "open alerts, optionally of one type",
    "check_shelf": "open CHECK_SHELF alerts: a selling SKU has gone improbably quiet while records say stock",
    "transfers": "open TRANSFER suggestions: move stock from another store before the supplier order lands",
    "lost_sales": "expected lost sales (units and value) from empty shelves over a period (today by default)",
    "help": "what can be asked",
}

EXAMPLES = (
    "What do I need to restock today?",
    "What is at risk of running out in the next 48 hours?",
    "Show me the reorder list for store S001",
    "Any phantom stock?",
    "Which stores are worst?",
    "How is MILK-1L doing?",
    "What sold most this week?",
    "What is out of stock now?",
    "What did we lose yesterday?",
    "How is MILK-1L doing in store S001?",
    "Any shelves to check?",
)


@dataclass
class Answer:
    question: str
    intent: str
    slots: dict[str, Any]
    sql: str | None
    params: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]
    text: str
    source: str = "rules"  # rules | llm | none
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    # Several-part answers (the restock plan): one dict per part with name, title, sql, params,
    # columns, rows, text. The top-level sql/rows are the first part's.
    parts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(_jsonable(asdict(self)))

    def finished(self) -> Answer:
        """Rows and params as JSON-ready values (ISO timestamps), for the CLI and the API alike."""
        self.rows = _jsonable(self.rows)
        self.params = _jsonable(self.params)
        self.parts = _jsonable(self.parts)
        return self


class AskRefused(ValueError):
    """The question is refused (empty, too long, or looks like an injection attempt)."""


# --- parsing ------------------------------------------------------------------------------------

# SQL or prompt-injection shapes. Slots are bound as parameters, so they could do no harm in the
# rule path; refusing them says clearly that the box takes questions, not commands.
_INJECTION = re.compile(
    r"""(;\s*\w)|(--)|(/\*)|(\bunion\s+(all\s+)?select\b)|(\bselect\b.+\bfrom\b)
    |(\b(drop|alter|truncate)\s+(table|view|schema|database|macro|index)\b)
    |(\bdelete\s+from\b)|(\binsert\s+into\b)|(\bupdate\s+\w+\s+set\b)|(\bcreate\s+(or\s+replace\s+)?\w+\s+\w)
    |(\b(attach|detach|pragma|install|load|export|import|checkpoint|vacuum)\s+['"\w])
    |(\bcopy\s+\S+\s+(to|from)\b)|(\bset\s+\w+\s*=)
    |(\b(read_csv|read_csv_auto|read_parquet|read_json|read_text|read_blob|glob|getenv|query_table)\s*\()
    |(\b(ignore|disregard|forget)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier)\s+(instructions|prompts?|rules)\b)
    |(\bsystem\s+prompt\b)|(\byou\s+are\s+now\b)""",
    re.IGNORECASE | re.VERBOSE,
)

# Intents in priority order: the first whose pattern matches wins. Store rankings come before
# the per-SKU intents ("which store has the most out-of-stocks" ranks stores), "sold out" before
# "sold most", "run out" before "sell".
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("help", r"^\s*(help|\?|what can (i|you) ask|what can you (do|answer)|examples?)\s*\??\s*$"),
        (
            "lost_sales",
            r"\b(lose|lost|losing|loss|losses)\b|\bmissed\s+(sales|revenue)\b|\bcost\s+(us|me)\b"
            r"|\bsales\s+(we\s+)?missed\b",
        ),
        (
            "check_shelf",
            r"\bcheck[\s_-]+(the\s+)?shel(f|ves)\b|\bsilent\b|\bquiet\b|\b(stopped|not|isn'?t|aren'?t)\s+sell"
            r"|\bno\s+sales\s+(since|for|in)\b|\bshel(f|ves)\s+to\s+check\b",
        ),
        ("transfers", r"\btransfers?\b|\bfrom\s+another\s+store\b|\bbetween\s+stores\b|\bborrow\b"),
        (
            "phantom_stock",
            r"\bphantom\b|\bghost\b|\brecount|\brecords?\s+(say|show|claim)|\bsystem\s+(says|shows)"
            r"|\bbook\s+stock\b|\bshould\s+be\s+there\b|\bmiscount",
        ),
        (
            "worst_stores",
            r"\bworst\b|\brank(ing)?\s+(the\s+)?stores?\b|\bstores?\s+(rank|ranking|league)"
            r"|\bwhich\s+stores?\b.*\b(most|worst|fewest|biggest|problems?|issues?)\b"
            r"|\bproblem\s+stores?\b|\bstores?\s+(with|having)\s+the\s+most\b|\bbad(dest)?\s+stores?\b",
        ),
        (
            "reorder_list",
            r"\bre-?order(s|ing)?\b|\bneed\s+to\s+order\b|\bto\s+order\b|\border\s+(list|suggestions?)"
            r"|\bpurchase\s+orders?\b|\bwhat\s+(should|must|do)\s+(i|we)\s+(need\s+to\s+)?(order|buy)\b"
            r"|\bwhat\s+to\s+buy\b",
        ),
        (
            "at_risk",
            r"\bat\s+risk\b|\brisk\b|\brun(s|ning)?\s+out\b|\bsell(s|ing)?\s+out\b|\babout\s+to\b"
            r"|\bgoing\s+to\s+(run|sell|be)\b|\bwill\s+(run|sell|be\s+empty|go\s+empty)"
            r"|\bstock-?outs?\s+(soon|risk|coming|next|in|within)\b|\bempty\s+(soon|by)\b|\brunning\s+low\b",
        ),
        (
            "out_of_stock",
            r"\bout\s+of\s+stock\b|\bout-of-stock\b|\boos\b|\bsold\s+out\b|\bstock-?outs?\b|\bempty\b"
            r"|\bno\s+stock\b|\bzero\s+stock\b|\bnothing\s+left\b|\bgaps?\b",
        ),
        (
            "top_sellers",
            r"\bsold\b|\bsell(s|ing)?\b|\bsales\b|\bbest[\s-]?sellers?\b|\btop[\s-]?sellers?\b"
            r"|\bmost\s+popular\b|\bfast(est)?[\s-]?moving\b|\bmoved\s+the\s+most\b|\bbestsellers?\b",
        ),
        (
            "restock_today",
            r"\brestock|\bre-stock|\breplenish|\brefill|\btop\s+up\b|\bmove\b.*\bshel|\bfill\b.*\bshel"
            r"|\bshelf\s+fill|\bshelves?\b.*\b(low|fill|stock)|\bbring\s+out\b|\bfrom\s+the\s+back(room)?\b",
        ),
        (
            "sku_status",
            r"\bstatus\b|\bhow\s+(is|are|many|much)\b|\bstock\s+levels?\b|\bon\s+hand\b|\bdoing\b"
            r"|\bwhat\s+about\b|\blevels?\b|\binventory\s+(of|for)\b|\bdetails?\b|\bdo\s+we\s+have\b"
            r"|\bhow'?s\b|\bwhat'?s\s+(up|going\s+on)\s+with\b|\bwhere\s+(are|do)\s+we\s+stand\b|\bcheck\s+on\b",
        ),
        ("open_alerts", r"\balerts?\b|\balarms?\b|\bwarnings?\b|\bissues?\b|\bproblems?\b"),
    )
)

_ALERT_WORDS = (
    ("CHECK_SHELF", r"check[\s_-]+(the\s+)?shel|silent|quiet"),
    ("TRANSFER", r"transfer"),
    ("PHANTOM_STOCK", r"phantom|ghost"),
    ("REORDER", r"re-?order"),
    ("RESTOCK_SHELF", r"restock|refill|replenish"),
    ("OUT_OF_STOCK", r"out\s+of\s+stock|\boos\b|sold\s+out"),
    ("STOCKOUT_RISK", r"risk|run(ning)?\s+out"),
)
_UNIT_HOURS = {"h": 1, "hr": 1, "hrs": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24,
               "w": 168, "wk": 168, "week": 168, "weeks": 168}
_HORIZON = re.compile(
    r"\b(?:next|within|in|over|coming|for)?\s*(?:the\s+)?(?:next\s+)?(\d+(?:\.\d+)?)\s*"
    r"(h|hr|hrs|hours?|d|days?|w|wk|weeks?)\b",
    re.IGNORECASE,
)
_TOP_N = re.compile(r"\b(?:top|best|first)\s+(\d{1,3})\b|\b(\d{1,3})\s+(?:best|top|most)\b", re.IGNORECASE)
_STORE_CODE = re.compile(r"[Ss]\d{1,4}")
_SKU_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+")
_ISO_DATE = re.compile(r"\b(20\d\d-\d\d-\d\d)\b")
_LAST_DAYS = re.compile(r"\b(?:last|past)\s+(\d{1,3})\s+days?\b", re.IGNORECASE)


@dataclass
class Vocabulary:
    """What the history knows, to recognise slot values in a question."""

    stores: set[str] = field(default_factory=set)
    skus: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> Vocabulary:
        rows = con.execute(
            """SELECT 's', store_id FROM (SELECT store_id FROM inventory_state UNION SELECT store_id FROM sales
                                          UNION SELECT store_id FROM alerts)
               UNION ALL SELECT 'k', sku FROM (SELECT sku FROM inventory_state UNION SELECT sku FROM sales
                                               UNION SELECT sku FROM catalog UNION SELECT sku FROM alerts)
               UNION ALL SELECT 'c', category FROM (SELECT category FROM inventory_state
                                                    UNION SELECT category FROM catalog)"""
        ).fetchall()
        vocab = cls()
        for kind, value in rows:
            if value is None:
                continue
            {"s": vocab.stores, "k": vocab.skus, "c": vocab.categories}[kind].add(str(value))
        vocab.stores.discard("*")
        return vocab


def _tokens(question: str) -> list[str]:
    return [t.strip("?!.,;:()[]\"'") for t in question.split()]


def _digits(s: str) -> str:
    d = re.sub(r"\D", "", s).lstrip("0")
    return d or ("0" if re.search(r"\d", s) else "")


def extract_slots(question: str, vocab: Vocabulary, default_horizon: float) -> dict[str, Any]:
    q = question.strip()
    low = q.lower()
    slots: dict[str, Any] = {}
    tokens = _tokens(q)
    stores = {s.lower(): s for s in vocab.stores}
    skus = {s.lower(): s for s in vocab.skus}
    for i, tok in enumerate(tokens):
        t = tok.lower()
        prev = tokens[i - 1].lower() if i else ""
        if "store" not in slots and t in stores:
            slots["store"] = stores[t]
        elif "store" not in slots and prev in ("store", "shop", "branch", "location") and any(
            c.isdigit() for c in tok
        ):
            # "store 2" -> S002 when exactly one known store has that number.
            num = _digits(tok)
            matches = [s for s in vocab.stores if num and _digits(s) == num]
            slots["store"] = matches[0] if len(matches) == 1 else tok
        elif "store" not in slots and _STORE_CODE.fullmatch(tok) and t not in skus:
            # "S1", "at S1", "S01": the known store with that number (S001), else the code as given.
            num = _digits(tok)
            matches = [s for s in vocab.stores if _digits(s) == num and s[:1].lower() == t[:1]]
            slots["store"] = matches[0] if len(matches) == 1 else tok.upper()
        elif "sku" not in slots and t in skus:
            slots["sku"] = skus[t]
        elif "sku" not in slots and prev in ("sku", "item", "article", "product") and re.fullmatch(
            r"[A-Za-z0-9_.\-]{1,64}", tok or "-"
        ) and any(c.isdigit() for c in tok):
            slots["sku"] = tok
        elif "sku" not in slots and _SKU_CODE.fullmatch(tok) and any(c.isdigit() for c in tok):
            # A SKU code the history has not seen yet ("SKU-0042"): answer "no state" for it
            # rather than "I can't answer that".
            slots["sku"] = tok
    for cat in sorted(vocab.categories, key=len, reverse=True):
        c = cat.lower()
        if re.search(rf"(?<![\w-]){re.escape(c)}(s|es)?(?![\w-])", low) or (
            c.endswith("s") and re.search(rf"(?<![\w-]){re.escape(c[:-1])}(?![\w-])", low)
        ):
            slots["category"] = cat
            break
    m = _HORIZON.search(q)
    if m:
        slots["horizon_hours"] = float(m.group(1)) * _UNIT_HOURS[m.group(2).lower()]
    elif re.search(r"\btomorrow\b", low):
        slots["horizon_hours"] = 24.0
    elif re.search(r"\b(this|next|the)\s+week\b", low):
        slots["horizon_hours"] = 168.0
    elif re.search(r"\b(today|tonight)\b", low):
        slots["horizon_hours"] = 24.0
    else:
        slots["horizon_hours"] = float(default_horizon)
    d = _ISO_DATE.search(q)
    last = _LAST_DAYS.search(q)
    if d:
        slots["period"], slots["date"] = "date", d.group(1)
    elif last:
        slots["period"], slots["days"] = "last_days", int(last.group(1))
    elif re.search(r"\byesterday\b", low):
        slots["period"] = "yesterday"
    elif re.search(r"\b(this|the)\s+week\b|\bweekly\b|\blast\s+7\s+days\b", low):
        slots["period"] = "this_week"
    elif re.search(r"\b(this|the)\s+month\b", low):
        slots["period"] = "this_month"
    else:
        slots["period"] = "today"
    n = _TOP_N.search(q)
    if n:
        slots["limit"] = max(1, min(int(n.group(1) or n.group(2)), 500))
    if re.search(r"\bshel(f|ves)\b|\bgaps?\b", low) and not re.search(r"\bbackroom\b|\bstore-?wide\b", low):
        slots["scope"] = "shelf"
    for alert_type, pat in _ALERT_WORDS:
        if re.search(pat, low):
            slots["alert_type"] = alert_type
            break
    return slots


def classify(question: str) -> str:
    for name, pattern in _RULES:
        if pattern.search(question):
            return name
    return "unknown"


def parse(question: str, vocab: Vocabulary, default_horizon: float = 48.0) -> tuple[str, dict[str, Any]]:
    """(intent, slots) for a question; raises AskRefused for injection-shaped input."""
    check_question(question)
    slots = extract_slots(question, vocab, default_horizon)
    intent = classify(question)
    if intent == "unknown" and "sku" in slots:
        intent = "sku_status"  # "MILK-1L?" alone asks for that SKU
    if intent == "sku_status" and "sku" not in slots and "category" not in slots:
        intent = "unknown"
    return intent, _relevant(intent, slots)


# Slots each intent uses besides store / sku / category / limit; the rest is noise in the answer.
_INTENT_SLOTS: dict[str, tuple[str, ...]] = {
    "at_risk": ("horizon_hours",),
    "worst_stores": ("horizon_hours",),
    "top_sellers": ("period", "date", "days"),
    "lost_sales": ("period", "date", "days"),
    "out_of_stock": ("scope",),
    "open_alerts": ("alert_type",),
}


def _relevant(intent: str, slots: dict[str, Any]) -> dict[str, Any]:
    keep = {"store", "sku", "category", "limit", *_INTENT_SLOTS.get(intent, ())}
    out = {k: v for k, v in slots.items() if k in keep}
    if intent == "reorder_list":
        out["alert_type"] = "REORDER"
    elif intent == "phantom_stock":
        out["alert_type"] = "PHANTOM_STOCK"
    elif intent == "check_shelf":
        out["alert_type"] = "CHECK_SHELF"
    elif intent == "transfers":
        out["alert_type"] = "TRANSFER"
    return out


def check_question(question: str) -> None:
    if not isinstance(question, str) or not question.strip():
        raise AskRefused("Ask a question, e.g. " + EXAMPLES[0])
    if len(question) > MAX_QUESTION:
        raise AskRefused(f"The question is longer than {MAX_QUESTION} characters.")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in question):
        raise AskRefused("The question contains control characters.")
    if _INJECTION.search(question):
        raise AskRefused(
            "Refused: that looks like SQL or an instruction to the system, not a question about "
            "stock. Ask in plain words, e.g. " + EXAMPLES[0]
        )
    for day in _ISO_DATE.findall(question):
        # The date slot is parsed later; an impossible one (2026-02-29) must be a reply, not a 500.
        try:
            date.fromisoformat(day)
        except ValueError:
            raise AskRefused(f"{day} is not a date on the calendar; write a day as YYYY-MM-DD.") from None


# --- SQL per intent ------------------------------------------------------------------------------

_SEVERITY_RANK = (
    "list_position(["
    + ", ".join(f"'{s}'" for s in sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True))
    + "], {col})"
)
_ALERT_INTENTS: dict[str, str | None] = {
    "reorder_list": "REORDER", "phantom_stock": "PHANTOM_STOCK", "check_shelf": "CHECK_SHELF",
    "transfers": "TRANSFER", "open_alerts": None,
}


def _filters(slots: dict[str, Any], alias: str, params: dict[str, Any], *, category_via: str | None = None) -> str:
    parts = []
    if "store" in slots:
        params["store"] = slots["store"]
        parts.append(f"{alias}.store_id = $store")
    if "sku" in slots:
        params["sku"] = slots["sku"]
        parts.append(f"{alias}.sku = $sku")
    elif "category" in slots:
        params["category"] = slots["category"]
        col = category_via or f"{alias}.category"
        parts.append(f"lower({col}) = lower($category)")
    return "".join(f"\n  AND {p}" for p in parts)


def _day_bounds(con: duckdb.DuckDBPyConnection, slots: dict[str, Any]) -> tuple[datetime, datetime, str]:
    """Event-time period for sales questions: the latest sales day unless a date is given."""
    row = con.execute("SELECT max(ts) FROM sales").fetchone()
    latest: datetime | None = row[0] if row else None
    period = slots.get("period", "today")
    if period == "date":
        day = date.fromisoformat(slots["date"])
    elif latest is None:
        day = date(2000, 1, 1)
    else:
        day = latest.date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    label = f"on {day.isoformat()}"
    if period == "yesterday":
        start, end = start - timedelta(days=1), start
        label = f"on {start.date().isoformat()}"
    elif period == "this_week":
        start = start - timedelta(days=start.weekday())
        label = f"in the week from {start.date().isoformat()}"
    elif period == "this_month":
        start = start.replace(day=1)
        label = f"in {start.strftime('%B %Y')}"
    elif period == "last_days":
        start = end - timedelta(days=int(slots.get("days", 7)))
        label = f"in the {slots.get('days')} days to {day.isoformat()}"
    return start, end, label


def _as_of(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute("SELECT max(ts) FROM inventory_state").fetchone()
    return row[0] if row else None


def _order_sql(slots: dict[str, Any], base: dict[str, Any], default_lead: float) -> tuple[str, dict[str, Any]]:
    """Items to order or expedite: out of stock now, an open REORDER, or the whole store runs out
    before an order placed now would arrive (the catalog lead time, store row before '*')."""
    params: dict[str, Any] = {"limit": base["limit"], "default_lead": float(default_lead)}
    lead = "coalesce(cs.lead_time_hours, cw.lead_time_hours, $default_lead)"
    sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty,
       coalesce(i.on_order, 0) AS on_order, round(i.hours_to_stockout, 1) AS hours_to_stockout,
       {lead} AS lead_time_hours,
       CASE WHEN coalesce(i.on_order, 0) > 0 THEN 'expedite' ELSE 'order' END AS todo,
       CASE WHEN i.shelf_qty + i.backroom_qty <= 0 OR oos.alert_id IS NOT NULL THEN 'out of stock'
            WHEN i.hours_to_stockout <= {lead} THEN 'runs out before the next delivery'
            ELSE 'open reorder alert' END AS reason,
       r.action AS alert_action
FROM inventory_latest i
LEFT JOIN catalog_latest cs ON cs.store_id = i.store_id AND cs.sku = i.sku
LEFT JOIN catalog_latest cw ON cw.store_id = '*' AND cw.sku = i.sku
LEFT JOIN (SELECT store_id, sku, min(alert_id) AS alert_id FROM open_alerts
           WHERE type = 'OUT_OF_STOCK' GROUP BY store_id, sku) oos
  ON oos.store_id = i.store_id AND oos.sku = i.sku
LEFT JOIN (SELECT store_id, sku, min(alert_id) AS alert_id, min(action) AS action FROM open_alerts
           WHERE type = 'REORDER' GROUP BY store_id, sku) r
  ON r.store_id = i.store_id AND r.sku = i.sku
WHERE (i.shelf_qty + i.backroom_qty <= 0 OR oos.alert_id IS NOT NULL OR r.alert_id IS NOT NULL
       OR i.hours_to_stockout <= {lead}){_filters(slots, 'i', params)}
ORDER BY reason <> 'out of stock', i.hours_to_stockout NULLS FIRST, i.store_id, i.sku
LIMIT $limit"""
    return sql, params


def _at_risk_today_sql(slots: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Still on the shelf now but empty before the end of the event-time day, or an open
    CHECK_SHELF (records say stock, the sales say otherwise)."""
    params: dict[str, Any] = {"limit": base["limit"], "hours_left_today": base["hours_left_today"]}
    sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty,
       round(i.hours_to_shelf_out, 1) AS hours_to_shelf_out, round(i.hours_to_stockout, 1) AS hours_to_stockout,
       CASE WHEN c.alert_id IS NOT NULL THEN 'check the shelf'
            WHEN i.backroom_qty > 0 THEN 'move from the backroom before it empties'
            ELSE 'backroom empty: order or transfer' END AS fix
FROM inventory_latest i
LEFT JOIN (SELECT store_id, sku, min(alert_id) AS alert_id FROM open_alerts
           WHERE type = 'CHECK_SHELF' GROUP BY store_id, sku) c
  ON c.store_id = i.store_id AND c.sku = i.sku
WHERE i.shelf_qty > 0
  AND (i.hours_to_shelf_out <= $hours_left_today OR i.hours_to_stockout <= $hours_left_today
       OR c.alert_id IS NOT NULL){_filters(slots, 'i', params)}
ORDER BY c.alert_id IS NULL, least(i.hours_to_shelf_out, i.hours_to_stockout) NULLS LAST, i.store_id, i.sku
LIMIT $limit"""
    return sql, params


def _lost_sales_sql(slots: dict[str, Any], params: dict[str, Any]) -> str:
    """Expected lost sales: demand rate x hours the recorded shelf stood empty in the period.

    Each inventory state holds until the next one for its store x SKU (the latest until the
    latest state overall). Value = units x the SKU's mean sale price in the store, else the
    catalog `unit_cost` (store row before '*'); `price_source` says which.
    """
    return f"""WITH s AS (
  SELECT store_id, sku, category, ts, shelf_qty, demand_per_hour,
         lead(ts) OVER (PARTITION BY store_id, sku ORDER BY ts, kafka_offset) AS next_ts
  FROM inventory_state WHERE ts < $end),
gaps AS (
  SELECT store_id, sku, category, demand_per_hour, greatest(ts, $start) AS g0,
         least(coalesce(next_ts, (SELECT max(ts) FROM inventory_state)), $end) AS g1
  FROM s WHERE shelf_qty <= 0),
lost AS (
  SELECT g.store_id, g.sku, any_value(g.category) AS category,
         sum(date_diff('second', g.g0, g.g1)) / 3600.0 AS empty_hours,
         sum(g.demand_per_hour * date_diff('second', g.g0, g.g1) / 3600.0) AS lost_units
  FROM gaps g
  WHERE g.g1 > g.g0{_filters(slots, 'g', params)}
  GROUP BY g.store_id, g.sku),
sale_price AS (SELECT store_id, sku, avg(unit_price) AS price FROM sales
               WHERE unit_price IS NOT NULL GROUP BY store_id, sku)
SELECT l.store_id, l.sku, l.category, round(l.empty_hours, 2) AS empty_hours,
       round(l.lost_units, 2) AS lost_units,
       round(coalesce(p.price, cs.unit_cost, cw.unit_cost), 2) AS unit_price,
       round(l.lost_units * coalesce(p.price, cs.unit_cost, cw.unit_cost), 2) AS lost_value,
       CASE WHEN p.price IS NOT NULL THEN 'sales' WHEN coalesce(cs.unit_cost, cw.unit_cost) IS NOT NULL
            THEN 'catalog unit_cost' END AS price_source
FROM lost l
LEFT JOIN sale_price p ON p.store_id = l.store_id AND p.sku = l.sku
LEFT JOIN catalog_latest cs ON cs.store_id = l.store_id AND cs.sku = l.sku
LEFT JOIN catalog_latest cw ON cw.store_id = '*' AND cw.sku = l.sku
WHERE l.lost_units > 0
ORDER BY lost_value DESC NULLS LAST, lost_units DESC, l.store_id, l.sku
LIMIT $limit"""


def build_sql(
    intent: str, slots: dict[str, Any], con: duckdb.DuckDBPyConnection, limit: int,
    settings_lead: float = 48.0,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(sql, params, context for the answer text) for a rule intent; `ctx["parts"]` holds further
    (name, title, sql, params) sections of a several-part answer (the restock plan)."""
    params: dict[str, Any] = {"limit": int(slots.get("limit", limit))}
    ctx: dict[str, Any] = {}
    if intent == "restock_today":
        as_of = _as_of(con)
        ctx["as_of"] = as_of
        # "Today" = what empties before the end of the latest event-time day, or is below its
        # minimum already, or has an open RESTOCK_SHELF alert; only if the backroom can supply.
        if as_of is not None:
            eod = datetime(as_of.year, as_of.month, as_of.day, tzinfo=as_of.tzinfo) + timedelta(days=1)
            params["hours_left_today"] = round((eod - as_of).total_seconds() / 3600, 3)
        else:
            params["hours_left_today"] = 24.0
        sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty, i.shelf_capacity,
       least(i.shelf_capacity - i.shelf_qty, i.backroom_qty) AS move_qty,
       round(i.hours_to_shelf_out, 1) AS hours_to_shelf_out, a.action AS alert_action
FROM inventory_latest i
LEFT JOIN open_alerts a
  ON a.store_id = i.store_id AND a.sku = i.sku AND a.type = 'RESTOCK_SHELF'
WHERE i.backroom_qty > 0 AND i.shelf_qty < i.shelf_capacity
  AND (a.alert_id IS NOT NULL
       OR i.shelf_qty <= coalesce(i.min_shelf_qty, 0)
       OR i.hours_to_shelf_out <= $hours_left_today){_filters(slots, 'i', params)}
ORDER BY a.alert_id IS NULL, i.hours_to_shelf_out NULLS LAST, move_qty DESC, i.store_id, i.sku
LIMIT $limit"""
        ctx["parts"] = [
            ("order", "Order or expedite", *_order_sql(slots, params, settings_lead)),
            ("at_risk_today", "At risk later today", *_at_risk_today_sql(slots, params)),
        ]
    elif intent == "at_risk":
        params["horizon"] = float(slots["horizon_hours"])
        sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty,
       round(i.demand_per_hour, 2) AS demand_per_hour,
       round(i.hours_to_shelf_out, 1) AS hours_to_shelf_out,
       round(i.hours_to_stockout, 1) AS hours_to_stockout
FROM inventory_latest i
WHERE (i.hours_to_stockout <= $horizon OR i.shelf_qty + i.backroom_qty = 0){_filters(slots, 'i', params)}
ORDER BY coalesce(i.hours_to_stockout, 0), i.store_id, i.sku
LIMIT $limit"""
    elif intent in _ALERT_INTENTS:
        alert_type = _ALERT_INTENTS[intent] or slots.get("alert_type")
        type_filter = ""
        if alert_type:
            params["alert_type"] = alert_type
            type_filter = "\n  AND a.type = $alert_type"
        extra = (
            "i.shelf_qty, i.vision_fill, " if intent == "phantom_stock"
            else "i.shelf_qty, i.backroom_qty, " if intent == "reorder_list" else ""
        )
        sql = f"""SELECT a.store_id, a.sku, i.category, a.type, a.severity, {extra}a.action, a.message,
       a.ts AS since
FROM open_alerts a
LEFT JOIN inventory_latest i ON i.store_id = a.store_id AND i.sku = a.sku
WHERE TRUE{type_filter}{_filters(slots, 'a', params, category_via='i.category')}
ORDER BY {_SEVERITY_RANK.format(col='a.severity')}, a.ts, a.store_id, a.sku
LIMIT $limit"""
    elif intent == "worst_stores":
        params["horizon"] = float(slots["horizon_hours"])
        store_filter = ""
        if "store" in slots:
            params["store"] = slots["store"]
            store_filter = "\nWHERE s.store_id = $store"
        sql = f"""WITH inv AS (
  SELECT store_id,
         count(*) FILTER (WHERE shelf_qty + backroom_qty = 0) AS out_of_stock,
         count(*) FILTER (WHERE shelf_qty = 0) AS empty_shelves,
         count(*) FILTER (WHERE hours_to_stockout <= $horizon) AS at_risk,
         count(*) AS skus
  FROM inventory_latest GROUP BY store_id),
al AS (
  SELECT store_id, count(*) AS open_alerts,
         count(*) FILTER (WHERE severity IN ('critical', 'high')) AS urgent_alerts
  FROM open_alerts GROUP BY store_id),
s AS (SELECT store_id FROM inv UNION SELECT store_id FROM al)
SELECT s.store_id, coalesce(al.open_alerts, 0) AS open_alerts,
       coalesce(al.urgent_alerts, 0) AS urgent_alerts, coalesce(inv.out_of_stock, 0) AS out_of_stock,
       coalesce(inv.empty_shelves, 0) AS empty_shelves, coalesce(inv.at_risk, 0) AS at_risk,
       coalesce(inv.skus, 0) AS skus
FROM s LEFT JOIN inv USING (store_id) LEFT JOIN al USING (store_id){store_filter}
ORDER BY urgent_alerts DESC, open_alerts DESC, out_of_stock DESC, at_risk DESC, s.store_id
LIMIT $limit"""
    elif intent == "sku_status":
        sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty, i.shelf_capacity,
       i.vision_fill, round(i.demand_per_hour, 2) AS demand_per_hour,
       round(i.hours_to_shelf_out, 1) AS hours_to_shelf_out,
       round(i.hours_to_stockout, 1) AS hours_to_stockout, i.on_order, i.ts AS as_of,
       (SELECT string_agg(a.type, ', ' ORDER BY a.type) FROM open_alerts a
        WHERE a.store_id = i.store_id AND a.sku = i.sku) AS open_alerts
FROM inventory_latest i
WHERE TRUE{_filters(slots, 'i', params)}
ORDER BY i.store_id, i.sku
LIMIT $limit"""
    elif intent == "top_sellers":
        start, end, label = _day_bounds(con, slots)
        params["start"], params["end"] = start, end
        ctx["period"] = label
        sales_filters = _filters(
            {k: v for k, v in slots.items() if k != "category"}, "s", params
        )
        cat = ""
        if "category" in slots and "sku" not in slots:
            params["category"] = slots["category"]
            cat = """
  AND s.sku IN (SELECT sku FROM inventory_latest WHERE lower(category) = lower($category)
                UNION SELECT sku FROM catalog_latest WHERE lower(category) = lower($category))"""
        sql = f"""SELECT s.sku, sum(s.qty) AS units, count(*) AS sales, count(DISTINCT s.store_id) AS stores
FROM sales s
WHERE s.ts >= $start AND s.ts < $end{sales_filters}{cat}
GROUP BY s.sku
ORDER BY units DESC, s.sku
LIMIT $limit"""
    elif intent == "lost_sales":
        start, end, label = _day_bounds(con, slots)
        params["start"], params["end"] = start, end
        ctx["period"] = label
        sql = _lost_sales_sql(slots, params)
    elif intent == "out_of_stock":
        shelf_only = slots.get("scope") == "shelf"
        cond = "i.shelf_qty = 0" if shelf_only else "(i.shelf_qty + i.backroom_qty = 0 OR a.alert_id IS NOT NULL)"
        ctx["scope"] = "empty shelves" if shelf_only else "out of stock"
        sql = f"""SELECT i.store_id, i.sku, i.category, i.shelf_qty, i.backroom_qty,
       round(i.demand_per_hour, 2) AS demand_per_hour, coalesce(a.ts, i.ts) AS since
FROM inventory_latest i
LEFT JOIN open_alerts a
  ON a.store_id = i.store_id AND a.sku = i.sku AND a.type = 'OUT_OF_STOCK'
WHERE {cond}{_filters(slots, 'i', params)}
ORDER BY i.demand_per_hour DESC NULLS LAST, i.store_id, i.sku
LIMIT $limit"""
    else:
        raise ValueError(f"no SQL for intent {intent!r}")
    return sql, params, ctx


# --- validation of SQL written by a model ----------------------------------------------------------

_BANNED_FUNCTIONS = frozenset(
    {
        "read_text", "read_blob", "read_csv", "read_csv_auto", "read_parquet", "parquet_scan",
        "read_json", "read_json_auto", "read_ndjson", "glob", "getenv", "query", "query_table",
        "sniff_csv", "current_setting", "duckdb_settings", "duckdb_secrets", "which_secret",
        "pragma_database_list",
    }
)


class UnsafeSQL(ValueError):
    pass


def validate_sql(sql: str) -> str:
    """Return the SQL if it is exactly one SELECT reading only known tables/views, else raise."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise UnsafeSQL("empty SQL")
    if len(text) > 5000:
        raise UnsafeSQL("SQL longer than 5000 characters")
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise UnsafeSQL(f"SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise UnsafeSQL(f"expected exactly one statement, got {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise UnsafeSQL(f"only SELECT is allowed, got {statements[0].type.name}")
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    finally:
        con.close()
    tree = orjson.loads(raw[0]) if raw else {"error": True}
    if tree.get("error"):
        raise UnsafeSQL(f"SQL not accepted: {tree.get('error_message', 'unparseable')}")
    ctes: set[str] = set()
    tables: set[str] = set()
    problems: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(node.get("cte_map"), dict):
                for entry in node["cte_map"].get("map", []):
                    if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                        ctes.add(entry["key"].lower())
            if kind == "BASE_TABLE":
                if node.get("schema_name") not in ("", "main", None) or node.get("catalog_name") not in ("", None):
                    problems.append("qualified table names are not allowed")
                tables.add(str(node.get("table_name", "")).lower())
            elif kind == "TABLE_FUNCTION":
                problems.append("table functions are not allowed")
            if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in _BANNED_FUNCTIONS:
                problems.append(f"function {node['function_name']} is not allowed")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(tree.get("statements", []))
    unknown = tables - ctes - {r.lower() for r in RELATIONS}
    if unknown:
        problems.append(f"unknown tables: {', '.join(sorted(unknown))}")
    if problems:
        raise UnsafeSQL("; ".join(dict.fromkeys(problems)))
    return text


# --- running ---------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def run_readonly(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], limit: int, timeout_s: float = QUERY_TIMEOUT_S
) -> tuple[list[str], list[list[Any]]]:
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description or []]
        rows = [list(r) for r in cur.fetchmany(limit)]
    finally:
        timer.cancel()
    return cols, rows


LLMClient = Callable[[str, Settings], str]


def ask(
    question: str,
    store: HistoryStore,
    settings: Settings,
    *,
    limit: int = DEFAULT_LIMIT,
    store_id: str | None = None,
    use_llm: bool | None = None,
    llm: LLMClient | None = None,
) -> Answer:
    """Answer a question from the history. Never raises for bad questions: `ok` is False instead.

    `use_llm`: None = only when the rules do not understand and `settings.llm_base_url` is set;
    False = never; True = always try the model first (falls back to the rules).
    """
    try:
        check_question(question)
    except AskRefused as exc:
        return Answer(question if isinstance(question, str) else "", "refused", {}, None, {}, [], [], str(exc), "none", False)
    try:
        con = store.read_connection()
    except HistoryBusy as exc:
        return Answer(question, "busy", {}, None, {}, [], [], str(exc), "none", False)
    try:
        vocab = Vocabulary.load(con)
        intent, slots = parse(question, vocab, settings.horizon_hours)
        if store_id:
            slots["store"] = store_id
        llm_wanted = bool(settings.llm_base_url) and (use_llm or (use_llm is None and intent == "unknown"))
        notes: list[str] = []
        if llm_wanted and use_llm is not False:
            answer = _ask_llm(question, con, settings, limit, llm or call_llm, notes)
            if answer is not None:
                return answer
        if intent == "unknown":
            return Answer(
                question, "unknown", slots, None, {}, [], [],
                "I can't answer that from the stock history. Try: " + "; ".join(EXAMPLES[:5]),
                "none", False, notes,
            )
        if intent == "help":
            return Answer(
                question, "help", slots, None, {}, ["intent", "meaning"],
                [[k, v] for k, v in INTENTS.items()], "Questions I understand, e.g.: " + "; ".join(EXAMPLES),
            )
        sql, params, ctx = build_sql(intent, slots, con, limit, settings.default_lead_time_hours)
        cols, rows = run_readonly(con, sql, params, limit=max(limit, int(params.get("limit", limit))))
        parts: list[dict[str, Any]] = []
        if "parts" in ctx:
            parts.append({"name": "shelf_moves", "title": "Move from the backroom to the shelf", "sql": sql,
                          "params": params, "columns": cols, "rows": rows})
            for name, title, psql, pparams in ctx["parts"]:
                pcols, prows = run_readonly(con, psql, pparams, limit=max(limit, int(pparams.get("limit", limit))))
                parts.append({"name": name, "title": title, "sql": psql, "params": pparams, "columns": pcols, "rows": prows})
            for part in parts:
                part["text"] = describe_part(part["name"], part["columns"], part["rows"])
        text = describe(intent, slots, cols, rows, ctx, parts)
        return Answer(question, intent, slots, sql, params, cols, rows, text, "rules", True, notes, parts).finished()
    except duckdb.InterruptException:
        return Answer(question, "timeout", {}, None, {}, [], [], "The query took too long and was stopped.", "none", False)
    finally:
        if not store.in_memory:
            con.close()


def describe_part(name: str, cols: list[str], rows: list[list[Any]]) -> str:
    r = [dict(zip(cols, row, strict=False)) for row in rows]
    more = "\n  …" if len(r) > 5 else ""
    if name == "shelf_moves":
        if not r:
            return "Shelf moves: none (every shelf is above its minimum, or its backroom is empty)."
        lines = [f"  {x['store_id']} {x['sku']}: move {x['move_qty']} (shelf {x['shelf_qty']}/{x['shelf_capacity']}, backroom {x['backroom_qty']})" for x in r[:5]]
        return f"Shelf moves from the backroom ({len(r)}):\n" + "\n".join(lines) + more
    if name == "order":
        if not r:
            return "Order or expedite: nothing (no SKU is out, or runs out before a delivery would arrive)."
        lines = [f"  {x['store_id']} {x['sku']}: {x['todo']} ({x['reason']})" for x in r[:5]]
        return f"Order or expedite ({len(r)}):\n" + "\n".join(lines) + more
    if not r:
        return "At risk later today: nothing."
    lines = [f"  {x['store_id']} {x['sku']}: {x['fix']}" for x in r[:5]]
    return f"At risk later today ({len(r)}):\n" + "\n".join(lines) + more


def describe(
    intent: str, slots: dict[str, Any], cols: list[str], rows: list[list[Any]], ctx: dict[str, Any],
    parts: list[dict[str, Any]] | None = None,
) -> str:
    where = ""
    if "store" in slots:
        where += f" in store {slots['store']}"
    if "sku" in slots:
        where += f" for {slots['sku']}"
    elif "category" in slots:
        where += f" in {slots['category']}"
    n = len(rows)
    r = [dict(zip(cols, row, strict=False)) for row in rows]
    if intent == "restock_today" and parts:
        if not any(p["rows"] for p in parts):
            return f"Nothing to restock, order or watch today{where}."
        return f"Today's restock plan{where}:\n" + "\n".join(p["text"] for p in parts)
    if intent == "lost_sales":
        period = ctx.get("period", "")
        if not n:
            return f"No expected lost sales {period}{where}: no recorded shelf stood empty."
        units = sum(float(x["lost_units"] or 0) for x in r)
        value = sum(float(x["lost_value"] or 0) for x in r)
        lines = [f"{x['store_id']} {x['sku']}: {x['lost_units']} units" + (f" ({x['lost_value']})" if x["lost_value"] is not None else "") + f", shelf empty {x['empty_hours']} h" for x in r[:5]]
        return (f"Expected lost sales {period}{where}: {units:.1f} units, {value:.2f} in value "
                f"(demand rate x hours the shelf stood empty):\n" + "\n".join(lines) + ("\n…" if n > 5 else ""))
    if intent == "restock_today":
        if not n:
            return f"Nothing to restock today{where}: every shelf is above its minimum or the backroom is empty."
        lines = [f"{x['store_id']} {x['sku']}: move {x['move_qty']} (shelf {x['shelf_qty']}/{x['shelf_capacity']}, backroom {x['backroom_qty']})" for x in r[:5]]
        return f"{n} SKU(s) to restock today{where}:\n" + "\n".join(lines) + ("\n…" if n > 5 else "")
    if intent == "at_risk":
        h = slots["horizon_hours"]
        if not n:
            return f"Nothing projected to run out within {h:g} h{where}."
        lines = [f"{x['store_id']} {x['sku']}: out in {x['hours_to_stockout'] if x['hours_to_stockout'] is not None else 0} h" for x in r[:5]]
        return f"{n} SKU(s) at risk within {h:g} h{where}:\n" + "\n".join(lines) + ("\n…" if n > 5 else "")
    if intent in _ALERT_INTENTS:
        label = {"reorder_list": "to reorder", "phantom_stock": "with phantom stock",
                 "check_shelf": "whose shelf to check", "transfers": "to transfer"}.get(intent, "open alerts")
        if not n:
            return f"No SKUs {label}{where}." if intent != "open_alerts" else f"No open alerts{where}."
        lines = [f"{x['store_id']} {x['sku']}: {x['action']}" for x in r[:5]]
        head = f"{n} SKU(s) {label}{where}:" if intent != "open_alerts" else f"{n} open alert(s){where}:"
        return head + "\n" + "\n".join(lines) + ("\n…" if n > 5 else "")
    if intent == "worst_stores":
        if not n:
            return "No stores in the history yet."
        lines = [f"{x['store_id']}: {x['open_alerts']} open alerts ({x['urgent_alerts']} urgent), {x['out_of_stock']} out of stock, {x['at_risk']} at risk" for x in r[:5]]
        return "Stores, worst first:\n" + "\n".join(lines)
    if intent == "sku_status":
        if not n:
            return f"No inventory state{where} yet."
        lines = [f"{x['store_id']} {x['sku']}: shelf {x['shelf_qty']}/{x['shelf_capacity']}, backroom {x['backroom_qty']}, alerts: {x['open_alerts'] or 'none'}" for x in r[:8]]
        return f"Status{where}:\n" + "\n".join(lines)
    if intent == "top_sellers":
        period = ctx.get("period", "")
        if not n:
            return f"No sales {period}{where}."
        lines = [f"{x['sku']}: {x['units']} units" for x in r[:5]]
        return f"Best sellers {period}{where}:\n" + "\n".join(lines)
    if intent == "out_of_stock":
        scope = ctx.get("scope", "out of stock")
        if not n:
            return f"Nothing {scope} now{where}." if scope == "out of stock" else f"No empty shelves now{where}."
        lines = [f"{x['store_id']} {x['sku']} (shelf {x['shelf_qty']}, backroom {x['backroom_qty']})" for x in r[:5]]
        return f"{n} SKU(s) {scope} now{where}:\n" + "\n".join(lines) + ("\n…" if n > 5 else "")
    return f"{n} row(s)."


# --- optional LLM ----------------------------------------------------------------------------------


def schema_prompt() -> str:
    lines = ["DuckDB tables (timestamps are TIMESTAMPTZ in UTC):"]
    for t in TABLES:
        lines.append(f"- {t.name}(" + ", ".join(f"{n} {typ}" for n, typ in t.columns) + ")")
    for name in VIEWS:
        lines.append(f"- view {name}: same columns as its base table, latest row per key")
    return "\n".join(lines)


def call_llm(question: str, settings: Settings) -> str:
    """Ask an OpenAI-compatible /chat/completions endpoint for one SELECT; returns its SQL text."""
    import httpx

    assert settings.llm_base_url
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    body = {
        "model": settings.llm_model,
        "temperature": 0,
        "messages": [
            {
                "role": "system",
                "content": "You write one DuckDB SELECT statement answering a store manager's question "
                "about inventory. Reply with the SQL only, no prose. Use only these relations.\n"
                + schema_prompt(),
            },
            {"role": "user", "content": question},
        ],
    }
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    resp = httpx.post(url, json=body, headers=headers, timeout=20.0)
    resp.raise_for_status()
    return str(resp.json()["choices"][0]["message"]["content"])


def strip_fences(content: str) -> str:
    """Models like to wrap SQL in a ```sql fence; take what is inside."""
    m = re.search(r"```(?:sql)?\s*(.*?)```", content, re.DOTALL | re.IGNORECASE)
    return (m.group(1) if m else content).strip()


def _ask_llm(
    question: str, con: duckdb.DuckDBPyConnection, settings: Settings, limit: int, llm: LLMClient, notes: list[str]
) -> Answer | None:
    try:
        sql = llm(question, settings)
    except Exception as exc:  # network, HTTP, malformed reply: fall back to the rules
        notes.append(f"language model unavailable ({type(exc).__name__}); used the rule parser")
        return None
    try:
        sql = validate_sql(strip_fences(sql))
    except UnsafeSQL as exc:
        notes.append(f"language model SQL rejected: {exc}")
        return None
    try:
        cols, rows = run_readonly(con, sql, {}, limit)
    except duckdb.Error as exc:
        notes.append(f"language model SQL failed: {str(exc).splitlines()[0]}")
        return None
    answer = Answer(
        question, "llm_sql", {}, sql, {}, cols, rows, f"{len(rows)} row(s) from SQL written by {settings.llm_model}.",
        "llm", True, notes,
    )
    return answer.finished()
