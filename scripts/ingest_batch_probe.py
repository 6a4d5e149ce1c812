"""The batch-cost probe of the ingest API: one oversized batch, and /healthz while it runs.

    PYTHONPATH=$PWD python scripts/ingest_batch_probe.py [--items 100000] [--json]

Starts the ingest router (with a publish that drops events: no broker) under uvicorn in a child
process, POSTs a batch of N `{}` items (300 KB for 100,000: under the 1 MB body limit, over the
1,000-item batch limit) and reports: the POST's status, seconds and response bytes; the
child's RSS before and its peak (VmHWM) after; the slowest /healthz answer while the POST ran.
Run it from a checkout to compare versions of producers/ingest_api.py.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def _serve(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from backroom.settings import Settings
    from producers.ingest_api import ingest_router

    async def drop(topic: str, key: str, value: bytes) -> None:
        return None

    app = FastAPI()
    app.include_router(ingest_router(Settings(_env_file=None), drop))  # type: ignore[call-arg]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def probe(items: int) -> dict[str, float | int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(200):
                try:
                    client.get(f"{base}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            rss_before = _rss_kb(proc.pid, "VmRSS")
            body = b"[" + b",".join([b"{}"] * items) + b"]"
            done = threading.Event()
            worst = [0.0]

            def poll() -> None:
                with httpx.Client(timeout=120) as c:
                    while not done.is_set():
                        t = time.perf_counter()
                        c.get(f"{base}/healthz")
                        worst[0] = max(worst[0], time.perf_counter() - t)
                        time.sleep(0.05)

            poller = threading.Thread(target=poll)
            poller.start()
            t0 = time.perf_counter()
            r = client.post(f"{base}/api/v1/sales/batch", content=body,
                            headers={"content-type": "application/json"})
            seconds = time.perf_counter() - t0
            done.set()
            poller.join()
            return {
                "items": items, "body_bytes": len(body), "status": r.status_code,
                "seconds": round(seconds, 3), "response_bytes": len(r.content),
                "rss_before_mb": round(rss_before / 1024, 1),
                "rss_peak_mb": round(_rss_kb(proc.pid, "VmHWM") / 1024, 1),
                "healthz_worst_s": round(worst[0], 3),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    result = probe(args.items)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
