"""`backroom demo`: the whole system in one command, stopped cleanly by Ctrl-C.

    backroom demo --stores 4 --skus 24 --speed 900

Starts the embedded Kafka broker when none answers (and no cluster is configured), creates the
topics, then runs the worker, the dashboard and the simulators as child processes, and prints
the dashboard URL. On Ctrl-C (or SIGTERM) it stops the children, then the broker it started:
no java or python process is left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console

from backroom.settings import Settings
from broker.embedded import BrokerError, EmbeddedBroker, broker_answers
from streams.topics import ensure_topics

console = Console()


@dataclass
class Children:
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, name: str, *args: str, log_dir: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(log_dir, f"{name}.log"), "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # Own process group: we decide the shutdown order, not the terminal's Ctrl-C.
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop_all(self, timeout_s: float = 20.0) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs if proc.poll() is not None]


def run_demo(settings: Settings, *, stores: int, skus: int, speed: float, seed: int,
             cameras: bool = True) -> int:
    broker: EmbeddedBroker | None = None
    children = Children()
    log_dir = str((settings.data_dir / "logs").resolve())
    os.makedirs(log_dir, exist_ok=True)
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not broker_answers(settings.bootstrap):
            if not settings.embedded:
                console.print(f"[red]No Kafka answers on BACKROOM_KAFKA_BOOTSTRAP={settings.bootstrap}[/]")
                return 2
            console.print("starting the embedded Kafka broker (first run resolves jars with Maven)…")
            broker = EmbeddedBroker(settings)
            broker.start()
        console.print(f"Kafka: {settings.bootstrap}")
        asyncio.run(ensure_topics(settings))
        children.spawn("worker", "worker", log_dir=log_dir)
        children.spawn("dashboard", "dashboard", log_dir=log_dir)
        sim_args = ["--stores", str(stores), "--skus", str(skus), "--speed", str(speed),
                    "--seed", str(seed), "--days", "60"]
        if cameras and _detector_available(settings):
            sim_args += ["--camera-every", "30"]
        children.spawn("simulator", "simulate", *sim_args, log_dir=log_dir)
        url = f"http://{settings.dashboard_host}:{settings.dashboard_port}/"
        console.print(f"\n[bold green]Backroom is running.[/] Dashboard: [bold]{url}[/]")
        console.print(f"Alerts in the terminal: `backroom alerts --follow`. Logs: {log_dir}. Ctrl-C stops everything.\n")
        while not stop:
            dead = [d for d in children.dead() if d != "simulator"]
            if dead:
                console.print(f"[red]{', '.join(dead)} exited; see {log_dir}[/]")
                return 1
            time.sleep(0.5)
        return 0
    except BrokerError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        console.print("stopping…")
        children.stop_all()
        if broker is not None:
            broker.stop()
        console.print("stopped.")


def _detector_available(settings: Settings) -> bool:
    """Cameras only make sense with the shipped detector weights (models/)."""
    try:
        from backroom.vision.detector import DEFAULT_MODEL
    except ImportError:
        return False
    model = settings.detector_model or DEFAULT_MODEL
    return bool(model) and os.path.exists(model)
