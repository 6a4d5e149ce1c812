"""`backroom bench dashboard --json`: N websocket clients, a fixed update rate, delivery latency.

    backroom bench dashboard --clients 200 --rate 1000 --seconds 10 --json
    python -m bench.dashboard --clients 200 --rate 1000 --seconds 10     # same, without the CLI

What is measured: the dashboard server (`create_app(settings, kafka=False)` under uvicorn) runs in
a child process with a feeder task in its event loop that applies `inventory.state` updates
straight into the live view at the requested rate — in-process, not through Kafka, so this is
the dashboard's fan-out cost alone (the Kafka leg is `backroom bench pipeline`). The parent
process opens the websocket clients. Each update's `version` is the feed time in microseconds,
so a client computes, for every update in every delta it receives, receive time − feed time:
that is the delivery latency (coalescing wait + serialisation + send + client parse), p50/p99
over all clients and updates. `dropped` counts deltas a client never got (sequence gaps: the
server replaced a slow client's backlog by a snapshot). A 1-client run at the same rate first is
the baseline; `ratio_p99` = p99 / baseline p99.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from array import array
from datetime import UTC, datetime
from itertools import repeat
from operator import itemgetter, sub
from typing import Any

import orjson

from dashboard.live import STATE_FIELDS

CATEGORIES = (
    "dairy",
    "bakery",
    "produce",
    "frozen",
    "snacks",
    "drinks",
    "household",
    "personal care",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: array, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


# --- server side (child process) ---------------------------------------------------------------


class Feeder:
    """Applies synthetic inventory.state updates (and a few alerts) to the view at a fixed rate."""

    def __init__(self, view: Any, rate: float, stores: int, skus: int, seed: int = 7) -> None:
        self.view = view
        self.rate = rate
        self.keys = [
            (f"S{s:03d}", f"SKU-{k:04d}") for s in range(1, stores + 1) for k in range(1, skus + 1)
        ]
        self.rng = random.Random(seed)
        self.sent = 0
        self.running = False

    def seed_all(self) -> None:
        for store, sku in self.keys:
            self.view.apply_state(self._state(store, sku))

    def _state(self, store: str, sku: str) -> dict[str, Any]:
        now_us = time.time_ns() // 1000
        shelf = self.rng.randint(0, 24)
        return {
            "ts": datetime.fromtimestamp(now_us / 1e6, UTC).isoformat(),
            "store_id": store, "sku": sku, "shelf_qty": shelf,
            "backroom_qty": self.rng.randint(0, 48), "shelf_capacity": 24, "min_shelf_qty": 6,
            "demand_per_hour": round(self.rng.random() * 3, 3),
            "hours_to_shelf_out": round(shelf / 1.5, 2), "hours_to_stockout": round(self.rng.random() * 96, 2),
            "category": CATEGORIES[int(sku[-4:]) % len(CATEGORIES)],
            "version": now_us,  # the feed time: clients measure latency against it
        }

    async def run(self) -> None:
        self.running = True
        start = time.perf_counter()
        while self.running:
            due = int((time.perf_counter() - start) * self.rate) - self.sent
            for _ in range(max(0, due)):
                store, sku = self.keys[self.rng.randrange(len(self.keys))]
                st = self._state(store, sku)
                self.view.apply_state(st)
                if st["shelf_qty"] == 0:  # some alert traffic too, with its lifecycle
                    self.view.apply_alert({
                        "alert_id": f"{store}:{sku}:OOS", "ts": st["ts"], "store_id": store, "sku": sku,
                        "type": "RESTOCK_SHELF", "status": "open", "severity": "high",
                        "message": f"Restock {sku}", "action": f"move 12 units of {sku}", "evidence": {},
                    })
                elif st["shelf_qty"] > 12:
                    self.view.apply_alert({
                        "alert_id": f"{store}:{sku}:OOS", "ts": st["ts"], "store_id": store, "sku": sku,
                        "type": "RESTOCK_SHELF", "status": "resolved", "severity": "high",
                        "message": "Resolved", "action": "none", "evidence": {},
                    }) if f"{store}:{sku}:OOS" in self.view.alerts else None
                self.sent += 1
            await asyncio.sleep(0.005)


def serve_child(port: int, rate: float, stores: int, skus: int, flush_ms: int) -> None:
    """Child process: dashboard + feeder; 'go'/'stop'/'quit' lines on stdin drive the feeder."""
    import uvicorn

    from backroom.settings import Settings
    from dashboard.server import create_app

    settings = Settings(_env_file=None, dashboard_port=port)  # type: ignore[call-arg]
    app = create_app(settings, kafka=False, flush_s=flush_ms / 1000)
    feeder = Feeder(app.state.view, rate, stores, skus)
    feeder.seed_all()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False
        )
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        feed_task: list[asyncio.Task[None]] = []
        cpu_at_go = [0.0]

        def command(line: str) -> None:
            if line == "go" and not feed_task:
                cpu_at_go[0] = time.process_time()
                feed_task.append(loop.create_task(feeder.run()))
            elif line == "stop":
                feeder.running = False
                cpu = time.process_time() - cpu_at_go[0]
                print(orjson.dumps({"sent": feeder.sent, "server_cpu_s": cpu}).decode(), flush=True)
            elif line == "quit":
                server.should_exit = True

        def read_stdin() -> None:
            for raw in sys.stdin:
                loop.call_soon_threadsafe(command, raw.strip())
            loop.call_soon_threadsafe(command, "quit")

        threading.Thread(target=read_stdin, daemon=True).start()
        await server.serve()

    asyncio.run(main())


# --- client side (parent process) ----------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.latency_us: array = array("q")
        self.messages = 0
        self.updates = 0
        self.dropped = 0
        self.snapshots = 0
        self.measuring = False


get_version = itemgetter(STATE_FIELDS.index("version"))


async def _client(url: str, stats: Stats, ready: asyncio.Event, counter: list[int], n: int,
                  stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, max_size=64 * 1024 * 1024, open_timeout=60, ping_interval=None) as ws:
        seq = None
        first = True
        stopper = asyncio.create_task(stop.wait())
        stopper.add_done_callback(lambda _: asyncio.ensure_future(ws.close()))
        while True:
            try:
                raw = await ws.recv(decode=False)  # bytes: orjson parses them without a copy
            except ConnectionClosed:
                break
            msg = orjson.loads(raw)
            if first:
                first = False
                counter[0] += 1
                if counter[0] >= n:
                    ready.set()
            if msg["type"] == "snapshot":
                if seq is not None and stats.measuring:
                    stats.dropped += max(0, msg["seq"] - seq)
                    stats.snapshots += 1
                seq = msg["seq"]
                continue
            if seq is not None and msg["seq"] != seq + 1 and stats.measuring:
                stats.dropped += max(0, msg["seq"] - seq - 1)
            seq = msg["seq"]
            if not stats.measuring:
                continue
            now_us = time.time_ns() // 1000
            rows = msg["states"]["r"]
            stats.messages += 1
            stats.updates += len(rows)
            stats.latency_us.extend(map(sub, repeat(now_us), map(get_version, rows)))


async def _client_group(conn: Any, port: int, clients: int) -> None:
    """One client process: `clients` websockets; measures between 'measure' and 'stop'."""
    stats = Stats()
    ready = asyncio.Event()
    stop = asyncio.Event()
    counter = [0]
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_commands() -> None:
        for _ in range(2):
            loop.call_soon_threadsafe(commands.put_nowait, conn.recv())

    threading.Thread(target=read_commands, daemon=True).start()
    url = f"ws://127.0.0.1:{port}/ws"
    tasks = []
    for _ in range(clients):
        tasks.append(asyncio.create_task(_client(url, stats, ready, counter, clients, stop)))
        await asyncio.sleep(0)  # connect gradually: 200 handshakes at once is a needless spike
    await asyncio.wait_for(ready.wait(), timeout=120)
    conn.send("ready")
    await commands.get()  # measure
    stats.measuring = True
    cpu0 = time.process_time()
    await commands.get()  # stop
    stats.measuring = False
    cpu = time.process_time() - cpu0
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    conn.send({"latency_us": stats.latency_us.tobytes(), "messages": stats.messages,
               "updates": stats.updates, "dropped": stats.dropped, "snapshots": stats.snapshots,
               "cpu_s": cpu, "errors": errors[:3], "failed": len(errors)})


def _client_proc(conn: Any, port: int, clients: int) -> None:
    asyncio.run(_client_group(conn, port, clients))


def _run_clients(port: int, clients: int, procs: int, seconds: float, warmup_s: float,
                 child: subprocess.Popen[str]) -> tuple[Stats, dict[str, Any]]:
    """Clients spread over `procs` processes, as pages are spread over browsers."""
    ctx = multiprocessing.get_context("spawn")
    procs = max(1, min(procs, clients))
    sizes = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    pipes, workers = [], []
    for n in sizes:
        mine, theirs = ctx.Pipe()
        w = ctx.Process(target=_client_proc, args=(theirs, port, n), daemon=True)
        w.start()
        pipes.append(mine)
        workers.append(w)
    try:
        for conn in pipes:
            if not conn.poll(180) or conn.recv() != "ready":
                raise RuntimeError("bench clients did not connect")
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(warmup_s)
        for conn in pipes:
            conn.send("measure")
        started = time.perf_counter()
        time.sleep(seconds)
        for conn in pipes:
            conn.send("stop")
        elapsed = time.perf_counter() - started
        child.stdin.write("stop\n")
        child.stdin.flush()
        server_stats = orjson.loads(child.stdout.readline())
        stats = Stats()
        errors: list[str] = []
        failed, cpu = 0, 0.0
        for conn in pipes:
            if not conn.poll(60):
                raise RuntimeError("bench clients did not report")
            part = conn.recv()
            stats.latency_us.frombytes(part["latency_us"])
            stats.messages += part["messages"]
            stats.updates += part["updates"]
            stats.dropped += part["dropped"]
            stats.snapshots += part["snapshots"]
            errors += part["errors"]
            failed += part["failed"]
            cpu += part["cpu_s"]
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    server_stats["elapsed"] = elapsed
    server_stats["client_cpu_s"] = cpu
    server_stats["client_errors"] = errors[:3]
    server_stats["failed_clients"] = failed
    return stats, server_stats


def _one_run(clients: int, rate: float, seconds: float, warmup_s: float, stores: int, skus: int,
             flush_ms: int, client_procs: int = 2) -> dict[str, Any]:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.dashboard", "--serve", str(port), "--rate", str(rate),
         "--stores", str(stores), "--skus", str(skus), "--flush-ms", str(flush_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("dashboard bench server did not start") from None
                time.sleep(0.1)
        stats, server = _run_clients(port, clients, client_procs, seconds, warmup_s, child)
    finally:
        if child.poll() is None:
            try:
                assert child.stdin is not None
                child.stdin.write("quit\n")
                child.stdin.flush()
                child.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                child.kill()
                child.wait()
    lat = stats.latency_us
    return {
        "clients": clients,
        "updates_per_s": round(stats.updates / max(1, clients) / server["elapsed"], 1),
        "latency_ms": {
            "p50": round(_pct(lat, 0.50), 1),
            "p99": round(_pct(lat, 0.99), 1),
            "max": round(max(lat) / 1000, 1) if lat else None,
        },
        "dropped": stats.dropped,
        "resync_snapshots": stats.snapshots,
        "messages": stats.messages,
        "updates_delivered": stats.updates,
        "failed_clients": server["failed_clients"],
        "client_errors": server["client_errors"],
        # CPU seconds per wall second while measuring: how much of the 2 cores each side used.
        "cpu": {
            "server": round(server["server_cpu_s"] / server["elapsed"], 2),
            "clients": round(server["client_cpu_s"] / server["elapsed"], 2),
        },
    }


def bench_dashboard(clients: int = 200, rate: float = 1000.0, seconds: float = 10.0,
                    warmup_s: float = 2.0, stores: int = 20, skus: int = 100, flush_ms: int = 100,
                    baseline: bool = True, client_procs: int = 2) -> dict[str, Any]:
    """Run the benchmark; returns the JSON object `backroom bench dashboard --json` prints."""
    load_at_start = round(os.getloadavg()[0], 2)
    base = _one_run(1, rate, min(seconds, 5.0), 1.0, stores, skus, flush_ms, 1) if baseline else None
    main = _one_run(clients, rate, seconds, warmup_s, stores, skus, flush_ms, client_procs)
    # updates_per_s is what each client received after coalescing (<= the feed rate).
    out: dict[str, Any] = {
        "clients": clients,
        "updates_per_s": rate,
        "delivered_updates_per_s_per_client": main["updates_per_s"],
        "latency_ms": main["latency_ms"],
        "dropped": main["dropped"],
        "resync_snapshots": main["resync_snapshots"],
        "failed_clients": main["failed_clients"],
        "cpu_per_wall_s": main["cpu"],
        "seconds": seconds,
        "flush_ms": flush_ms,
        "client_processes": client_procs,
        "keys": stores * skus,
        "feed": "in-process into the live view (no Kafka)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        # Other work on the machine competes for the same cores: say how busy it was.
        "load_avg_1m_at_start": load_at_start,
    }
    if main["client_errors"]:
        out["client_errors"] = main["client_errors"]
    if base is not None:
        out["baseline"] = {"clients": 1, "latency_ms": base["latency_ms"]}
        p99 = base["latency_ms"]["p99"]
        out["ratio_p99"] = round(main["latency_ms"]["p99"] / p99, 2) if p99 else None
    out["target"] = {
        "p99_ms": 500,
        "met": bool(main["latency_ms"]["p99"] <= 500 and not main["failed_clients"]),
    }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--flush-ms", type=int, default=100)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        serve_child(args.serve, args.rate, args.stores, args.skus, args.flush_ms)
        return
    result = bench_dashboard(args.clients, args.rate, args.seconds, stores=args.stores, skus=args.skus,
                             flush_ms=args.flush_ms, baseline=not args.no_baseline,
                             client_procs=args.client_procs)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
