"""`GET /api/ask?q=...`: `backroom ask` over HTTP, mounted by the dashboard (dashboard/server.py).

    backroom dashboard   # then: curl 'http://127.0.0.1:8000/api/ask?q=What+is+out+of+stock+now'

The question logic is `backroom.ask.ask`; this module only maps its answers onto HTTP statuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from backroom.ask import ask
from backroom.history import HistoryStore, history_path
from backroom.settings import Settings


def ask_router(settings: Settings) -> APIRouter:
    """`GET /api/ask?q=...` -> the Answer as JSON; mounted by the dashboard (which applies its auth).

    400 for refused questions (empty, too long, injection-shaped), 503 while the history file is
    busy or a query timed out, 200 otherwise (also for "I can't answer that": intent `unknown`).
    """
    router = APIRouter(tags=["ask"])
    store = HistoryStore(history_path(settings))

    # A plain def: FastAPI runs it in its thread pool, so DuckDB never blocks the event loop.
    @router.get("/api/ask", summary="Answer a question about stock from the DuckDB history")
    def get_ask(
        q: str = Query(..., max_length=2000, description="the question, in plain words"),
        store_id: str | None = Query(None, alias="store", max_length=64, description="limit to one store"),
    ) -> dict[str, Any]:
        answer = ask(q, store, settings, store_id=store_id)
        if answer.intent == "refused":
            raise HTTPException(status_code=400, detail=answer.text)
        if answer.intent in ("busy", "timeout"):
            raise HTTPException(status_code=503, detail=answer.text, headers={"Retry-After": "2"})
        return answer.to_dict()

    return router
