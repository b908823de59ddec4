"""docker-compose.yml: valid for Debian's docker-compose, nothing published beyond 127.0.0.1,
workers that scale; and the commands its services run, run here as local processes against
the local PostgreSQL (no Docker engine is needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.storage import open_storage
from tests.conftest import TINY_STUDY

pytestmark = pytest.mark.compose  # needs docker-compose (and PostgreSQL for the last test)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


def _compose_binary() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("NOISE_SEARCH_REQUIRE_POSTGRES"):
            pytest.fail("docker-compose is required here: apt-get install docker-compose")
        pytest.skip("Debian's docker-compose is not installed (apt-get install docker-compose)")
    return exe


def _env_without_compose_vars() -> dict[str, str]:
    """The environment minus what the compose file reads, so that only the env file counts."""
    names = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    return {k: v for k, v in os.environ.items() if k not in names}


def _config(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_compose_binary(), "-f", str(COMPOSE), "--env-file", str(env_file),
                           "config"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=_env_without_compose_vars())


def _example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _published_on_loopback_only(port) -> bool:
    if isinstance(port, dict):  # the long syntax newer Compose versions print
        return port.get("host_ip") == "127.0.0.1"
    return str(port).startswith("127.0.0.1:")


def test_compose_file_is_valid_and_publishes_nothing_beyond_loopback():
    result = _config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "dashboard", "worker"}
    example = _example()

    pg = services["postgres"]
    assert "ports" not in pg  # reachable from the other services only
    assert "pgdata" in config["volumes"]
    assert any(str(v).startswith("pgdata:/var/lib/postgresql/data") for v in pg["volumes"])
    assert pg["environment"]["POSTGRES_PASSWORD"] == example["POSTGRES_PASSWORD"]
    assert pg["environment"]["POSTGRES_USER"] == example["POSTGRES_USER"]

    dashboard = services["dashboard"]
    assert dashboard["ports"] and all(_published_on_loopback_only(p)
                                      for p in dashboard["ports"])
    for service in services.values():
        assert all(_published_on_loopback_only(p) for p in service.get("ports", []))

    # `docker compose up --scale worker=4`: no fixed name, no host port.
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    expected = (f"postgresql+psycopg://{example['POSTGRES_USER']}:"
                f"{example['POSTGRES_PASSWORD']}@postgres:5432/{example['POSTGRES_DB']}")
    for name in ("worker", "dashboard"):
        assert services[name]["environment"]["NOISE_SEARCH_STORAGE"] == expected
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["command"][:2] == ["run", example["STUDY_FILE"]]


def test_compose_refuses_to_start_without_a_password(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _config(empty)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr and "copy .env.example to .env" in result.stderr


# --- the services' commands, as local processes --------------------------------------------


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, enough for this file."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def _service(name: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """argv (image entrypoint + the service's command) and environment of a service."""
    raw = yaml.safe_load(COMPOSE.read_text())
    service = raw["services"][name]
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile names its ENTRYPOINT in exec form"
    entrypoint = json.loads(match.group(1))
    assert entrypoint == ["noise-search"]
    argv = [str(Path(sys.executable).with_name("noise-search"))]
    argv += [_interpolate(str(arg), env) for arg in service["command"]]
    environment = {k: _interpolate(str(v), env) for k, v in service["environment"].items()}
    return argv, environment


def _study_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url)  # with the schema lock: a worker may be creating the tables
    try:
        if "tiny" not in [s.study_name for s in storage.get_all_studies()]:
            return []
        return optuna.load_study(study_name="tiny", storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_and_dashboard_commands_run_against_postgres(postgres_url, tmp_path):
    """The worker's command stopped as `docker stop` does (SIGTERM) fails its trial cleanly;
    run again (a restarted container) it completes the tiny study, that trial's configuration
    included; the dashboard's command serves the study on 127.0.0.1. (Several workers at
    once: tests/test_workers.py.)"""
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny.toml").write_text(TINY_STUDY.replace("epochs = 20",
                                                                       "epochs = 1500"))
    compose_env = {**_example(), "STUDY_FILE": "studies/tiny.toml", "NOISE_SEARCH_HEARTBEAT": "2"}
    argv, environment = _service("worker", compose_env)
    # The storage the service would use is the compose network's PostgreSQL; here, ours.
    assert environment["NOISE_SEARCH_STORAGE"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in environment["NOISE_SEARCH_STORAGE"]
    env = {**os.environ, **environment, "NOISE_SEARCH_STORAGE": postgres_url,
           "TF_CPP_MIN_LOG_LEVEL": "3"}

    stopped = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline, running = time.monotonic() + 120, []
    while not running and time.monotonic() < deadline and stopped.poll() is None:
        time.sleep(0.3)
        running = [t for t in _study_trials(postgres_url)
                   if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
    assert running, "the worker did not start a trial"
    stopped.send_signal(signal.SIGTERM)
    out, _ = stopped.communicate(timeout=120)
    assert stopped.returncode == 130 and "Traceback" not in out, out[-2000:]
    (interrupted,) = [t for t in _study_trials(postgres_url) if t.number == running[0].number]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["failure"] == "interrupted"

    again = subprocess.run(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=240)
    assert again.returncode == 0, again.stdout[-2000:]
    complete = Counter(t.user_attrs["config"] for t in _study_trials(postgres_url)
                       if t.state == TrialState.COMPLETE)
    assert len(complete) == 5 and set(complete.values()) == {1}
    assert interrupted.user_attrs["config"] in complete

    argv, environment = _service("dashboard", compose_env)
    port = _free_port()
    # In the container it listens on all of the container's interfaces on 8080 (published on
    # the host's 127.0.0.1 only); here on 127.0.0.1 and a free port.
    assert argv[1:] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    argv = argv[:2] + ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, **environment, "NOISE_SEARCH_STORAGE": postgres_url}
    dashboard = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and body is None:
            assert dashboard.poll() is None, "the dashboard exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "the dashboard did not answer within 60 s"
        assert [s["study_name"] for s in body["study_summaries"]] == ["tiny"]
    finally:
        dashboard.send_signal(signal.SIGTERM)
        dashboard.wait(30)
