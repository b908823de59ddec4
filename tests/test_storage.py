"""Storage contract on every backend: concurrent creation, the queue, unreachable servers,
outages, and passwords kept out of everything a person or the database sees."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search import spec as spec_module
from search.cli import main
from search.engine import train as engine_train
from search.errors import NoiseSearchError
from search.storage import mask_password, open_storage
from search.study.opening import open_study
from search.study.record import CONFIG_ATTR, SPEC_ATTR, queued_attrs
from search.study.runner import StudyRunner
from search.study.space import trial_params
from tests.conftest import TINY_STUDY, FakeTrainer, private_postgres

TINY_STUDY_13 = TINY_STUDY.replace("std = [0.1, 0.3]", "std = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]")


def _trials(url: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


# --- several workers starting at the same moment ----------------------------------------------


def _start_worker(path: str, url: str, barrier, results) -> None:
    """A worker's start-up on a fresh database, all at once: create the tables, create or load
    the study, fill the queue."""
    try:
        spec = spec_module.load(path)
        barrier.wait(timeout=60)
        runner = StudyRunner(spec, open_storage(url), train=FakeTrainer())
        runner.recover()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.processes
def test_workers_starting_together_create_the_study_and_its_queue_once(write_study,
                                                                        storage_url):
    path = write_study()
    # fork: the start-up under test, without re-importing everything in each process.
    ctx = multiprocessing.get_context("fork")
    n = 5
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_start_worker, args=(str(path), storage_url, barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert sorted(results.get(timeout=5) for _ in range(n)) == ["ok"] * n
    storage = optuna.storages.RDBStorage(storage_url)
    assert [s.study_name for s in storage.get_all_studies()] == ["tiny"]
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.user_attrs[SPEC_ATTR] == spec_module.load(path).to_dict()
    keys = [t.user_attrs[CONFIG_ATTR] for t in study.get_trials()]
    assert sorted(keys) == sorted(c.key for c in spec_module.load(path).configurations())
    assert all(t.state == TrialState.WAITING for t in study.get_trials())
    storage.engine.dispose()


def test_a_duplicate_in_the_queue_is_never_trained(write_study, storage_url, fake_train):
    """However a configuration came to be queued twice, it is trained and completed once."""
    path = write_study()
    spec = spec_module.load(path)
    storage = open_storage(storage_url)
    trained = fake_train.calls
    runner = StudyRunner(spec, storage, train=fake_train)
    runner.recover()
    first = spec.configurations()[1]
    # What an enqueue retried after a lost acknowledgement leaves behind.
    runner.study.enqueue_trial(trial_params(first, spec), user_attrs=queued_attrs(first))
    runner.run()
    assert sorted(trained) == sorted(c.key for c in spec.configurations())
    trials = runner.study.get_trials()
    complete = [t.user_attrs[CONFIG_ATTR] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.key for c in spec.configurations())
    (dup,) = [t for t in trials if t.state == TrialState.FAIL]
    original = next(t for t in trials if t.user_attrs[CONFIG_ATTR] == first.key
                    and t.state == TrialState.COMPLETE)
    assert dup.user_attrs == {CONFIG_ATTR: first.key, "kind": first.kind,
                              "failure": f"duplicate of trial {original.number}"}
    assert dup.number > original.number


def test_a_trial_given_back_by_an_interrupted_worker_is_run_by_the_last_one(write_study,
                                                                            storage_url,
                                                                            fake_train):
    """Worker A is interrupted while B is busy and no trial is left running: B, finding the
    queue empty, queues A's configuration again and trains it before it stops."""
    spec = spec_module.load(write_study())
    worker_b = StudyRunner(spec, open_storage(storage_url), train=lambda *a: given_back(*a))
    worker_a = StudyRunner(spec, open_storage(storage_url), train=fake_train)
    taken: list[str] = []

    def given_back(spec_, data, config):
        if not taken:  # meanwhile, A takes a configuration and is interrupted on it
            trial = worker_a._next_trial()
            taken.append(trial.user_attrs[CONFIG_ATTR])
            trial.set_user_attr("failure", "interrupted")
            worker_a.study.tell(trial, state=TrialState.FAIL)
        return fake_train(spec_, data, config)

    outcomes = worker_b.run()
    assert taken and taken[0] in [o.config.key for o in outcomes]
    trials = worker_b.study.get_trials()
    complete = [t.user_attrs[CONFIG_ATTR] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.key for c in spec.configurations())
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.user_attrs[CONFIG_ATTR] == taken[0]


def test_a_study_whose_creator_died_before_storing_its_spec_is_adopted(write_study,
                                                                        storage_url):
    spec = spec_module.load(write_study())
    storage = open_storage(storage_url)
    optuna.create_study(study_name="tiny", storage=storage)  # a creator that died right here
    study = open_study(spec, storage)
    assert study.user_attrs[SPEC_ATTR] == spec.to_dict()
    # A foreign study with trials is still refused rather than taken over.
    foreign = optuna.create_study(study_name="foreign", storage=storage)
    foreign.enqueue_trial({})
    with pytest.raises(NoiseSearchError, match="not created by noise-search"):
        open_study(spec_module.load(write_study(), study_name="foreign"), storage)


# --- storage that cannot be reached -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SECRET = "Pw-" + uuid.uuid4().hex[:10]


@pytest.mark.parametrize("url, expected", [
    (f"postgresql+psycopg://someone:{SECRET}@no-such-host.invalid:5432/db", "cannot open"),
    (f"postgresql+psycopg://someone:{SECRET}@127.0.0.1:{_free_port()}/db", "cannot open"),
    (f"postgresql+psycopg://someone:{SECRET}@@127.0.0.1/db", "cannot open"),
    (f"postgres-ql://someone:{SECRET}@127.0.0.1/db", "is not a database URL"),
    (f"postgresql+nodriver://someone:{SECRET}@127.0.0.1/db", "cannot open"),
    (f"not a url {SECRET}", "is not a database URL"),
    ("sqlite:////no/such/directory/studies.db", "no such database file"),
], ids=["wrong-host", "server-down", "bad-url", "bad-scheme", "unknown-driver", "not-a-url",
         "sqlite-dir"])
def test_unreachable_storage_is_one_line_within_seconds(url, expected, capsys):
    started = time.monotonic()
    code = main(["studies", "--storage", url])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("noise-search: error: ") and expected in err
    assert SECRET not in err and "Traceback" not in err
    assert elapsed < 10


def test_unreachable_postgres_database_and_role_are_one_line(postgres_url, capsys):
    url = sa.engine.make_url(postgres_url)
    for bad in (url.set(database="no_such_db_" + uuid.uuid4().hex[:6]),
                url.set(username="no_such_role", password=SECRET)):
        started = time.monotonic()
        code = main(["studies", "--storage", bad.render_as_string(hide_password=False)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "does not exist" in err
        assert SECRET not in err and time.monotonic() - started < 10


def test_a_server_that_does_not_answer_times_out_in_seconds(capsys):
    """A listening socket that never speaks PostgreSQL: the connect timeout, not a hang."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        port = server.getsockname()[1]
        started = time.monotonic()
        code = main(["studies", "--storage",
                     f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{port}/db"])
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and "cannot open storage" in err and SECRET not in err
    assert 3 < elapsed < 15


@pytest.fixture
def password_server():
    """A private PostgreSQL server that checks passwords (scram-sha-256), on a free port.

    The shared test server trusts local connections, so a wrong password would pass there.
    Yields (url with the right password, stop) and removes the server afterwards.
    """
    with private_postgres("scram-sha-256") as server:
        yield server.url, server.stop


@pytest.mark.processes
def test_bad_password_and_stopped_server_are_one_line(password_server, capsys):
    url, stop = password_server
    right = sa.engine.make_url(url).password
    wrong = "Wrong" + uuid.uuid4().hex[:8]
    assert main(["studies", "--storage", url]) == 0
    assert "no studies yet" in capsys.readouterr().out
    for bad, expected in ((url.replace(right, wrong), "password authentication failed"),
                          (url.replace(f":{right}@", "@"), "no password supplied")):
        started = time.monotonic()
        code = main(["studies", "--storage", bad])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and expected in err, err
        assert wrong not in err and right not in err and "Traceback" not in err
        assert time.monotonic() - started < 10
    stop()  # the server goes down
    started = time.monotonic()
    assert main(["studies", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "Connection refused" in err and right not in err and err.count("\n") == 1
    assert time.monotonic() - started < 10


# --- passwords --------------------------------------------------------------------------------


def test_mask_password_forms():
    assert mask_password("postgresql+psycopg://u:p%40ss@h:5/db and mysql://a:b@c/d") == (
        "postgresql+psycopg://u:***@h:5/db and mysql://a:***@c/d")
    assert mask_password("host=h password='x y' user=u") == "host=h password=*** user=u"


@pytest.mark.slow
def test_password_never_reaches_output_logs_errors_or_the_database(postgres_url, write_study,
                                                                   capsys, caplog):
    """A role with a password, a study run through its URL: nothing shows the password."""
    server = sa.engine.make_url(postgres_url)
    role, secret = f"ns_role_{uuid.uuid4().hex[:8]}", f"Pw{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'"))
        conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {role}"))
    url = server.set(username=role, password=secret).render_as_string(hide_password=False)
    try:
        caplog.set_level(logging.DEBUG)
        path = write_study()
        assert main(["run", str(path), "--storage", url, "--set", "model.epochs=5"]) == 0
        assert main(["results", "tiny", "--storage", url, "--format", "json"]) == 0
        assert main(["studies", "--storage", url]) == 0
        dead = url.replace(f"@{server.host}:{server.port}/", f"@127.0.0.1:{_free_port()}/")
        assert main(["studies", "--storage", dead]) == 2
        out, err = capsys.readouterr()
        assert "tiny: 5/5 configurations complete" in out and "cannot open storage" in err
        assert f"{role}:***@" in out  # the run names its storage, masked
        assert secret not in out + err + caplog.text
        with admin.connect() as conn:
            tables = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public'")).scalars().all()
        assert "trials" in tables
        dump = ""
        with sa.create_engine(postgres_url).connect() as conn:
            for table in tables:
                dump += " ".join(conn.execute(sa.text(
                    f'SELECT t::text FROM "{table}" t')).scalars().all())
        assert "hidden_pre" in dump and secret not in dump
    finally:
        with sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE usename = :role"), {"role": role})
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


# --- a short outage during a run --------------------------------------------------------------


def _outage(server_url: str, database: str, started: threading.Event, seconds: float) -> None:
    """Refuse new connections to ``database`` and cut the open ones, for ``seconds``."""
    admin = sa.create_engine(sa.engine.make_url(server_url).set(database="postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :db AND pid <> pg_backend_pid()"),
                     {"db": database})
        started.set()
        time.sleep(seconds)
        conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
    admin.dispose()


@pytest.mark.slow
def test_a_short_server_outage_is_survived(postgres_url, write_study, monkeypatch, caplog):
    monkeypatch.setenv("NOISE_SEARCH_HEARTBEAT", "2")
    spec = spec_module.load(write_study(), ["model.epochs=100"])
    storage = open_storage(postgres_url)
    database = sa.engine.make_url(postgres_url).database
    outage_started = threading.Event()
    outage = threading.Thread(target=_outage, args=(postgres_url, database, outage_started, 3))
    finished_before: list[int] = []

    def train(spec_, data, config):
        result = engine_train(spec_, data, config)
        if not outage.is_alive() and not outage_started.is_set() and len(finished_before) == 1:
            # The second trial has trained; its results reach the storage only after the
            # outage, and the rest of the queue is taken while the server is away.
            outage.start()
            outage_started.wait(10)
        return result

    def on_done(outcome):
        finished_before.append(outcome.number)

    caplog.set_level(logging.WARNING, logger="search.storage")
    runner = StudyRunner(spec, storage, train=train)
    outcomes = runner.run(on_done=on_done)
    outage.join()
    assert outage_started.is_set()
    assert "storage unreachable while recording trial" in caplog.text
    assert [o.state for o in outcomes] == [TrialState.COMPLETE] * 5
    trials = _trials(postgres_url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert sorted(t.user_attrs[CONFIG_ATTR] for t in trials) == sorted(
        c.key for c in spec.configurations())
    storage.engine.dispose()


# --- commands that only read ------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["results", "tiny"], ["studies"],
                                  ["compare", "tiny", "a", "b"],
                                  ["report", "tiny", "-o", "r.html"],
                                  ["dashboard", "--port", "0"]])
def test_a_reading_command_on_a_mistyped_sqlite_path_creates_nothing(argv, tmp_path, capsys):
    before = set(tmp_path.iterdir())
    assert main([*argv, "--storage", "sqlite:///mistyped.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("noise-search: error: no such database file: 'mistyped.db'")
    assert set(tmp_path.iterdir()) == before  # no database, no lock file, no report


# --- readers are never locked out (SQLite WAL) -------------------------------------------------


def _hold_a_write(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """A writer in the middle of a commit-sized transaction, and an impatient reader."""
    writer = sqlite3.connect(path, isolation_level=None, timeout=5)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE studies SET study_name = study_name")
    return writer, sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)


def test_sqlite_readers_are_not_locked_out_by_a_writer(tmp_path):
    path = tmp_path / "wal.db"
    open_storage(f"sqlite:///{path}").create_new_study([], study_name="s")
    writer, reader = _hold_a_write(path)
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reader.execute("SELECT count(*) FROM studies").fetchone()[0] == 1
    writer.rollback()


def test_sqlite_on_a_network_file_system_keeps_its_rollback_journal(tmp_path, monkeypatch,
                                                                    caplog):
    """WAL needs shared memory between the processes that open the file: not over NFS. There,
    a reader can meet "database is locked" (the README says to use PostgreSQL)."""
    monkeypatch.setattr("search.storage.sqlite.filesystem_type", lambda path: "nfs4")
    caplog.set_level(logging.INFO, logger="search.storage")
    path = tmp_path / "nfs.db"
    open_storage(f"sqlite:///{path}").create_new_study([], study_name="s")
    assert "network file system" in caplog.text
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    writer, reader = _hold_a_write(path)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        reader.execute("SELECT count(*) FROM studies").fetchone()
    writer.rollback()


def test_filesystem_type_of_known_mounts():
    from search.storage.sqlite import filesystem_type

    assert filesystem_type("/proc/self") == "proc"
    assert filesystem_type("/") not in (None, "proc")


def test_a_reader_queries_the_database_throughout_a_run(write_study, tmp_path, fake_engine):
    """`sqlite3 noise-search.db` while a study runs and saves its figures: never refused."""
    path = tmp_path / "studies.db"
    url = f"sqlite:///{path}"
    open_storage(url)  # the file exists, so the reader can start with the run
    done, reads, refused = threading.Event(), [], []

    def read() -> None:
        while not done.is_set():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0) as conn:
                    reads.append(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
            except sqlite3.OperationalError as exc:
                refused.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert main(["run", str(write_study()), "--storage", url, "--quiet"]) == 0
    finally:
        done.set()
        reader.join()
    assert refused == [] and len(reads) > 10 and reads[-1] == 5


# --- a full disk (SQLite) -----------------------------------------------------------------------

_FULL_DISK_RUN = """\
import resource, signal, sys
from types import SimpleNamespace
import search.engine
from tests.conftest import FakeTrainer
trainer = FakeTrainer()
search.engine.load = lambda name, builder=False: SimpleNamespace(NAME=name, train=trainer)
from search.storage import open_storage
open_storage(sys.argv[2])  # a fresh database, then no file may grow past the limit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails (EFBIG), as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))
from search.cli import main
sys.exit(main(["run", sys.argv[1], "--storage", sys.argv[2], "--quiet"]))
"""


@pytest.mark.processes
def test_a_full_disk_is_one_line_and_the_study_resumes(write_study, tmp_path, monkeypatch,
                                                       fake_engine, capsys):
    """SQLite's file cannot grow (RLIMIT_FSIZE stands in for a full disk): the run stops at
    once with one line, the configurations recorded before are kept, and the same command
    finishes the study once there is room."""
    path = write_study(TINY_STUDY_13)
    url = f"sqlite:///{tmp_path / 'full.db'}"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "NOISE_SEARCH_HEARTBEAT": "1", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _FULL_DISK_RUN, str(path), url], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("noise-search: error: cannot write to the database while ")
    assert "(is the disk full?); what was recorded before is kept" in done.stderr
    kept = [t for t in _trials(url) if t.state == TrialState.COMPLETE]
    assert 0 < len(kept) < 13
    monkeypatch.setenv("NOISE_SEARCH_HEARTBEAT", "1")  # the cut-off trial goes stale at once
    assert main(["run", str(path), "--storage", url, "--quiet"]) == 0
    complete = [t.user_attrs[CONFIG_ATTR] for t in _trials(url) if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(set(complete)) and len(complete) == 13
    assert set(fake_engine.calls).isdisjoint(t.user_attrs[CONFIG_ATTR] for t in kept)
