from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_STUDY = """\
[study]
name = "tiny"
seed = 3
repeats = 3
record_every = 5

[data]
dataset = "circles"
n_samples = 60
noise = 0.1
random_state = 1
n_train = 20

[model]
hidden = [8]
epochs = 20

[noise]
placements = ["input", "hidden_pre"]
std = [0.1, 0.3]
"""


# The figures `noise-search report` makes and saves for optuna-dashboard, in order.
REPORT_FIGURE_IDS = ["noise-search-1-heatmap", "noise-search-2-sigma", "noise-search-3-repeats",
                     "noise-search-4-curves", "noise-search-5-gap", "noise-search-6-boundary",
                     "noise-search-8-robustness", "noise-search-9-profiles"]
# The finished tiny study measures robustness too, so the report and dashboard tests see the
# robustness figures.
ROBUSTNESS_SECTION = """
[robustness]
input_std = [0.0, 0.1, 0.3]
draws = 5
"""


@pytest.fixture(scope="module")
def finished_tiny_study(tmp_path_factory) -> str:
    """Storage URL of a finished TINY_STUDY + [robustness] (baseline + 2 placements × 2 σ, 3
    repeats, 3 test σ), one per
    test module; `run` has saved its figures and note for optuna-dashboard as its last step."""
    from search.cli import main

    root = tmp_path_factory.mktemp("finished")
    path = root / "tiny.toml"
    path.write_text(TINY_STUDY + ROBUSTNESS_SECTION)
    url = f"sqlite:///{root / 'studies.db'}"
    assert main(["run", str(path), "--storage", url, "--quiet"]) == 0
    return url


class FakeTrainer:
    """A Trainer that trains nothing and imports no TensorFlow, for tests of the queue, resume,
    results and the view, where training is not the point.

    Repeat r of a configuration scores ``score(config, r)``: known in advance, different for
    every configuration and repeat, the same on every call. Configurations whose key is in
    ``diverge`` diverge (at the last epoch of every repeat). ``calls`` lists the keys trained
    (a block of repeats, as racing trains them, as (key, first repeat, stop)). ``score`` may be
    replaced per instance (racing tests give configurations known means and spreads).
    """

    def __init__(self, diverge: tuple[str, ...] = ()):
        self.diverge = set(diverge)
        self.calls: list[Any] = []

    @staticmethod
    def score(config, repeat: int) -> float:
        sigma = sum(s for _, s in config.sigmas)
        return round(0.8 - 0.1 * min(sigma, 1.0) + 0.01 * repeat - 0.001 * len(config.sigmas), 6)

    def values(self, config, repeats: int) -> np.ndarray:
        return np.array([self.score(config, r) for r in range(repeats)])

    def __call__(self, spec, data, config, repeats=None):
        from search.engine._common import TrainResult, record_epochs

        chosen = range(spec.study.repeats) if repeats is None else repeats
        self.calls.append(config.key if repeats is None else (config.key, chosen.start,
                                                              chosen.stop))
        test = self.values(config, chosen.stop)[chosen.start:]
        train = test + 0.05
        epochs = record_epochs(spec.model.epochs, spec.study.record_every)
        ramp = np.linspace(0.5, 1.0, len(epochs))  # each curve ends at the final value
        curves = {"test_metric": np.outer(test, ramp), "train_metric": np.outer(train, ramp),
                  "test_loss": np.outer(1 - test, ramp[::-1]),
                  "train_loss": np.outer(1 - train, ramp[::-1])}
        diverged_at = np.full(test.size, epochs[-1] if config.key in self.diverge else 0)
        return TrainResult(train_metric=train, test_metric=test, train_loss=1 - train,
                           test_loss=1 - test, curve_epochs=epochs, curves=curves,
                           diverged_at=diverged_at, seconds=0.0,
                           robustness=self.profiles(spec, config, test))

    @staticmethod
    def profiles(spec, config, test: np.ndarray) -> np.ndarray | None:
        """[robustness]: (R, S) known in advance; noise-trained configurations lose less
        under test noise, with seed-to-seed variation that is not a shift."""
        if spec.robustness is None:
            return None
        stds = np.asarray(spec.robustness.input_std)
        sigma = min(sum(s for _, s in config.sigmas), 1.0)
        r = np.arange(test.size)[:, None]
        wobble = 0.004 * ((7 * r + 3 * np.arange(stds.size)[None]) % 5) * (1 + 3 * sigma)
        return test[:, None] - stds[None] * (0.6 - 0.5 * sigma) + wobble * stds[None]


@pytest.fixture
def fake_train() -> FakeTrainer:
    """A FakeTrainer to hand to StudyRunner(train=...)."""
    return FakeTrainer()


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> FakeTrainer:
    """Every engine this process loads is a FakeTrainer (so `main(["run", ...])` trains with it);
    returns the trainer. Worker processes started by `--workers` are not affected."""
    trainer = FakeTrainer()
    monkeypatch.setattr("search.engine.load",
                        lambda name, builder=False: SimpleNamespace(NAME=name, train=trainer))
    return trainer


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's storage or writes into the repository."""
    monkeypatch.delenv("NOISE_SEARCH_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write_study(tmp_path: Path):
    """write_study(text=TINY_STUDY, name="study.toml") -> path of a study file."""

    def write(text: str = TINY_STUDY, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


# --- storage backends -------------------------------------------------------------------------
# Storage tests run one contract on every backend, as optuna's tests do with STORAGE_MODES.
# PostgreSQL comes in through $NOISE_SEARCH_TEST_POSTGRES (a URL of a database on a server
# that lets this user create databases); CI sets it and NOISE_SEARCH_REQUIRE_POSTGRES=1, so
# there a missing server fails the run instead of skipping.
STORAGE_MODES = ["sqlite", "postgresql"]


def postgres_server_url() -> str | None:
    url = os.environ.get("NOISE_SEARCH_TEST_POSTGRES")
    if not url:
        if os.environ.get("NOISE_SEARCH_REQUIRE_POSTGRES"):
            pytest.fail("NOISE_SEARCH_REQUIRE_POSTGRES is set but NOISE_SEARCH_TEST_POSTGRES "
                        "is not")
        pytest.skip("no PostgreSQL server: set NOISE_SEARCH_TEST_POSTGRES="
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test to run this test")
    return url


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    server = postgres_server_url()
    url = sa.engine.make_url(server)
    name = f"ns_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("NOISE_SEARCH_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL at {url.render_as_string(hide_password=True)} is not "
                    f"reachable: {str(exc).splitlines()[0]}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=STORAGE_MODES)
def storage_url(request, tmp_path: Path) -> str:
    """Each backend in turn: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'storage.db'}"
    return request.getfixturevalue("postgres_url")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def private_postgres(auth: str = "trust") -> Iterator[SimpleNamespace]:
    """A PostgreSQL server of this test's own, on a free port: stopping and starting it
    disturbs nobody else (the shared test server serves other tests at the same time).

    Yields .url (postgresql+psycopg, with the password), .stop() (fast shutdown: open
    connections are cut) and .start(); the server is removed afterwards. ``auth``: the
    pg_hba method for every connection ("trust", "scram-sha-256").
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("NOISE_SEARCH_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_owner: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ns-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    password = "Pw" + uuid.uuid4().hex[:12]
    (root / "pw").write_text(password)
    if as_owner:
        shutil.chown(root / "pw", "postgres")
    port = _free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
    run([*as_owner, initdb, "-D", str(root / "data"), "-U", "postgres", "-A", auth,
         f"--pwfile={root / 'pw'}", "--no-sync"])
    ctl = [*as_owner, pg_ctl, "-D", str(root / "data"), "-l", str(root / "log"), "-w"]
    start = [*ctl, "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"]
    stop = [*ctl, "-m", "fast", "stop"]
    run(start)
    try:
        yield SimpleNamespace(
            url=f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres",
            stop=lambda: run(stop), start=lambda: run(start))
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
