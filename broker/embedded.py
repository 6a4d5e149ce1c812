"""A real Apache Kafka (KRaft) run from Maven-resolved jars: one node, or a cluster of a few.

    backroom broker start                # resolve jars (first time), format, start, wait until it answers
    backroom broker start --brokers 3    # three nodes on this machine: replication 3, min ISR 2
    backroom broker status    # exit 0 only when a client gets cluster metadata
    backroom broker stop

`EmbeddedBroker(settings)` is what the CLI, `backroom demo` and the test session use;
`EmbeddedCluster(settings)` starts `settings.brokers` of them as one KRaft quorum (every node is
broker and controller, node i on ports `broker_port + 2i` / `controller_port + 2i`). Ready means
a real Kafka client fetched cluster metadata listing every node, never a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from backroom.settings import Settings

HERE = Path(__file__).resolve().parent


class BrokerError(RuntimeError):
    pass


async def _fetch_metadata(bootstrap: str, timeout_s: float) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.start(), timeout_s)
        cluster = await asyncio.wait_for(client.describe_cluster(), timeout_s)
        return len(cluster["brokers"])
    finally:
        await client.close()


def broker_answers(bootstrap: str, timeout_s: float = 3.0, brokers: int = 1) -> bool:
    """True when a Kafka client gets cluster metadata (at least `brokers` brokers) from `bootstrap`."""
    # A refused connection is the expected answer while we wait; aiokafka logs it as an error.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_fetch_metadata(bootstrap, timeout_s)) >= max(1, brokers)
    except Exception:
        return False
    finally:
        quiet.setLevel(level)


def _new_cluster_id() -> str:
    # An id starting with "-" reads as an option to the tool's argument parser (1 in 64
    # random ids; Kafka's own Uuid.randomUuid() skips them for the same reason).
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


class EmbeddedBroker:
    """One KRaft node. Alone (the defaults) it is its own quorum; `EmbeddedCluster` passes the
    node id, its ports, the quorum's voters and the replication settings."""

    def __init__(
        self, settings: Settings, *, node_id: int = 1, port: int | None = None,
        controller_port: int | None = None, voters: str | None = None, replication: int = 1,
        min_isr: int = 1, home: Path | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = node_id
        self.port = port or settings.broker_port
        self.controller_port = controller_port or settings.controller_port
        self.voters = voters or f"{node_id}@{settings.broker_host}:{self.controller_port}"
        self.replication = replication
        self.min_isr = min_isr
        self.home = (home or settings.data_dir / "broker").resolve()
        self.log_dir = self.home / "kafka-logs"
        self.config_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"
        self.stdout_file = self.home / "broker.out"
        self.libs = (settings.broker_cache_dir / f"kafka-{settings.kafka_version}" / "libs").resolve()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.broker_host}:{self.port}"

    # --- jars ----------------------------------------------------------------------------------
    def resolve(self) -> Path:
        """Copy the broker jars into the cache once; later calls are free."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven")
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={self.settings.kafka_version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"mvn could not resolve the Kafka jars:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        marker.write_text(self.settings.kafka_version)
        return self.libs

    # --- lifecycle -----------------------------------------------------------------------------
    def _java(self, *args: str, heap_mb: int) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java, f"-Xmx{heap_mb}m", f"-Xms{min(heap_mb, 128)}m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1" if heap_mb < 256 else "-XX:+UseStringDeduplication",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
            "-cp", f"{self.libs}/*", *args,
        ]

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        template = (HERE / "server.properties.template").read_text()
        self.config_file.write_text(
            template.format(
                node_id=self.node_id,
                voters=self.voters,
                host=self.settings.broker_host,
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
                partitions=self.settings.partitions,
                replication=self.replication,
                min_isr=self.min_isr,
            )
        )

    def _format(self, cluster_id: str | None = None) -> None:
        if (self.log_dir / "meta.properties").exists():
            return
        cluster_id = cluster_id or _new_cluster_id()
        cmd = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file),
            heap_mb=128,
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"kafka-storage format failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def start(self, timeout_s: float = 90.0, detach: bool = False) -> str:
        """Start the broker (resolving and formatting first) and wait until it answers.

        `detach=True` leaves it running after this process exits (`backroom broker start`);
        otherwise the caller must `stop()` it.
        """
        if broker_answers(self.bootstrap):
            raise BrokerError(f"something already answers on {self.bootstrap}")
        self.resolve()
        self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if broker_answers(self.bootstrap, timeout_s=2.0):
                if detach:
                    self.process = None
                return self.bootstrap
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout_s:.0f}s:\n{self.log_tail()}")

    def launch(self, cluster_id: str | None = None) -> None:
        """Write the config, format the data dir (first time), start the JVM; no waiting."""
        self._write_config()
        self._format(cluster_id)
        out = self.stdout_file.open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config_file), heap_mb=self.settings.broker_heap_mb),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C in a terminal reaches us, and we stop the JVM in order.
            start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(str(self.process.pid))

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BrokerError(
                f"broker {self.node_id} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """kill -9, as a crash: no controlled shutdown, no leadership hand-over."""
        pid = self.process.pid if self.process else self.running_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process is not None:
            self.process.wait(timeout=30)
        self.process = None
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker this object (or the pid file) knows; True when one was stopped."""
        pid = self.process.pid if self.process else self.running_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    break
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.process = None
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.stdout_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no broker output)"


class EmbeddedCluster:
    """`settings.brokers` KRaft nodes on this machine, each broker and controller, one quorum.

    Replication is min(3, nodes) and `min.insync.replicas` one less (at least 1): with three
    nodes, one may crash without losing an acknowledged (acks=all) record or refusing writes.
    Node i (from 0) listens on `broker_port + 2i` and `controller_port + 2i` unless `ports`
    gives (broker, controller) pairs; its data lives in `<data_dir>/cluster/node-<i+1>`.
    """

    def __init__(self, settings: Settings, ports: list[tuple[int, int]] | None = None) -> None:
        n = settings.brokers
        if ports is None:
            ports = [(settings.broker_port + 2 * i, settings.controller_port + 2 * i) for i in range(n)]
        if len(ports) != n:
            raise BrokerError(f"{n} brokers need {n} port pairs, got {len(ports)}")
        self.settings = settings
        self.replication = min(3, n)
        self.min_isr = max(1, self.replication - 1)
        host = settings.broker_host
        voters = ",".join(f"{i + 1}@{host}:{c}" for i, (_, c) in enumerate(ports))
        self.home = (settings.data_dir / "cluster").resolve()
        self.nodes = [
            EmbeddedBroker(
                settings, node_id=i + 1, port=p, controller_port=c, voters=voters,
                replication=self.replication, min_isr=self.min_isr, home=self.home / f"node-{i + 1}",
            )
            for i, (p, c) in enumerate(ports)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout_s: float = 120.0, detach: bool = False) -> str:
        """Start every node (one cluster id for all), wait until metadata lists all of them."""
        if broker_answers(self.bootstrap):
            raise BrokerError(f"something already answers on {self.bootstrap}")
        self.nodes[0].resolve()
        id_file = self.home / "cluster.id"
        self.home.mkdir(parents=True, exist_ok=True)
        if not id_file.exists():
            id_file.write_text(_new_cluster_id())
        cluster_id = id_file.read_text().strip()
        try:
            for node in self.nodes:
                node.launch(cluster_id)
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        if detach:
            for node in self.nodes:
                node.process = None
        return self.bootstrap

    def wait_ready(self, timeout_s: float = 120.0, nodes: int | None = None) -> None:
        """Until cluster metadata lists `nodes` (default: all) brokers."""
        want = nodes or len(self.nodes)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                node.check_alive()
            if broker_answers(self.bootstrap, timeout_s=2.0, brokers=want):
                return
            time.sleep(0.3)
        tails = "\n".join(f"--- node {n.node_id}\n{n.log_tail(10)}" for n in self.nodes)
        raise BrokerError(f"the cluster did not list {want} brokers within {timeout_s:.0f}s:\n{tails}")

    def running(self) -> list[int]:
        return [n.node_id for n in self.nodes if n.running_pid() is not None]

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node at once: one by one, the last would wait for a quorum that is gone."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            return any(list(pool.map(lambda n: n.stop(timeout_s), self.nodes)))
