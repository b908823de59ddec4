"""Many workers on one study, as real processes with real signals: the grid is split between
them, every grid point completes exactly once, and a killed or interrupted worker's trial is
run again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import spec as spec_module
from search.cli import main
from search.storage import open_storage
from search.study.record import CONFIG_ATTR, WORKER_ATTR

NOISE_SEARCH = str(Path(sys.executable).with_name("noise-search"))

STUDY = """\
[study]
name = "split"
seed = 5
repeats = 2
record_every = 1000

[data]
dataset = "circles"
n_samples = 60
noise = 0.1
random_state = 1
n_train = 20

[model]
hidden = [8]
epochs = {epochs}

[noise]
placements = ["input"]
std = {std}
"""


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, NOISE_SEARCH_HEARTBEAT="2", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("NOISE_SEARCH_STORAGE", None)
    with open(log, "w") as out:
        return subprocess.Popen([NOISE_SEARCH, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=log.parent)


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    # open_storage, as every noise-search command: the workers may be creating the tables.
    storage = open_storage(url)
    try:
        names = [s.study_name for s in storage.get_all_studies()]
        if "split" not in names:
            return []
        return optuna.load_study(study_name="split", storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def _running(url: str) -> list[optuna.trial.FrozenTrial]:
    """Trials being trained: RUNNING, with their configuration and worker recorded."""
    return [t for t in _trials(url)
            if t.state == TrialState.RUNNING and WORKER_ATTR in t.user_attrs]


def _running_if(url: str, n: int) -> list[optuna.trial.FrozenTrial] | None:
    """The trials being trained when there are ``n``, from that one read of the study: a
    second read can find one of them finished and the next not yet started (then one trial
    and one worker; seen in full CI runs on PostgreSQL under load)."""
    running = _running(url)
    return running if len(running) == n else None


def _wait_for(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for p in procs:
            assert p.poll() is None, f"a worker exited early ({p.returncode}) waiting for {what}"
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _worker_id(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def _assert_each_grid_point_complete_once(url: str, path: Path) -> list:
    trials = _trials(url)
    grid = sorted(c.key for c in spec_module.load(path).configurations())
    complete = Counter(t.user_attrs[CONFIG_ATTR] for t in trials
                       if t.state == TrialState.COMPLETE)
    assert sorted(complete) == grid and set(complete.values()) == {1}
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


@pytest.mark.processes
def test_three_workers_one_killed_every_grid_point_complete_once(postgres_url, tmp_path):
    """The must-show: 3 worker processes on one PostgreSQL study, one SIGKILLed mid-trial."""
    path = tmp_path / "split.toml"
    # Trials of seconds (a 12,000-epoch one could end within the test's reads, seen in CI):
    # the victim's must still be training when it is killed.
    path.write_text(STUDY.format(epochs=60000, std="[0.1, 0.2, 0.3]"))
    workers = [_spawn(["run", str(path), "--storage", postgres_url, "--quiet"],
                      tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        # All three train at once (each took its own configuration from the queue), seen in
        # one read: a second read may find the victim between two trials (seen in CI).
        running = _wait_for(lambda: _running_if(postgres_url, 3), 120, "3 trials in training",
                            workers)
        victim = workers[0]
        (trial,) = [t for t in running if t.user_attrs[WORKER_ATTR] == _worker_id(victim)]
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        for w in workers[1:]:
            assert w.wait(180) == 0, (tmp_path / "worker1.log").read_text()[-2000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    trials = _assert_each_grid_point_complete_once(postgres_url, path)
    # The killed worker's trial went stale (no heartbeat), was failed, and run again elsewhere.
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.number == trial.number and "failure" not in failed.user_attrs
    (rerun,) = [t for t in trials if t.state == TrialState.COMPLETE
                and t.user_attrs[CONFIG_ATTR] == trial.user_attrs[CONFIG_ATTR]]
    assert rerun.number > trial.number
    assert rerun.user_attrs[WORKER_ATTR] != trial.user_attrs[WORKER_ATTR]
    # The grid was split: both survivors trained configurations. The victim may have finished
    # one before the other two started training (they start seconds apart); none after.
    ran = Counter(t.user_attrs[WORKER_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert {_worker_id(w) for w in workers[1:]} <= set(ran) <= {_worker_id(w) for w in workers}
    assert all(t.datetime_complete <= trial.datetime_start for t in trials
               if t.state == TrialState.COMPLETE
               and t.user_attrs[WORKER_ATTR] == _worker_id(victim))


@pytest.mark.processes
def test_interrupted_local_workers_stop_cleanly_and_resume(storage_url, tmp_path, capsys):
    """`run --workers 2`, then Ctrl-C (SQLite) or SIGTERM (PostgreSQL) to the command: each
    worker fails its trial as interrupted and exits; running again completes the grid once."""
    sig = signal.SIGINT if storage_url.startswith("sqlite") else signal.SIGTERM
    path = tmp_path / "split.toml"
    # Trials of several seconds: one of 2,000 epochs could end between the test seeing it
    # running and the signal arriving (seen in CI), and then nothing was interrupted.
    path.write_text(STUDY.format(epochs=12000, std="[0.1, 0.3]"))
    args = ["run", str(path), "--storage", storage_url, "--workers", "2"]
    parent = _spawn(args, tmp_path / "first.log")
    try:
        running = _wait_for(lambda: _running_if(storage_url, 2), 120, "2 trials in training",
                            [parent])
        parent.send_signal(sig)
        assert parent.wait(60) == 130
    finally:
        if parent.poll() is None:
            parent.kill()
    log = (tmp_path / "first.log").read_text()
    assert "interrupted; the trial in progress is marked failed" in log, log
    assert "Traceback" not in log, log
    trials = {t.number: t for t in _trials(storage_url)}
    # Two child processes (not the command itself) held the trials.
    assert len({t.user_attrs[WORKER_ATTR] for t in running}) == 2
    assert _worker_id(parent) not in {t.user_attrs[WORKER_ATTR] for t in running}
    # Each was failed cleanly, unless it finished before its worker got the signal: a worker
    # can start seconds after the other under load, its first trial then close to its end.
    interrupted = [t for t in running if trials[t.number].state != TrialState.COMPLETE]
    assert interrupted
    for t in interrupted:
        assert trials[t.number].state == TrialState.FAIL
        assert trials[t.number].user_attrs["failure"] == "interrupted"
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]

    assert main(["run", str(path), "--storage", storage_url]) == 0
    _assert_each_grid_point_complete_once(storage_url, path)
    out = capsys.readouterr().out
    for t in interrupted:  # the interrupted configurations were trained again
        assert out.count(f"  {t.user_attrs[CONFIG_ATTR]} ") == 1


def test_workers_need_a_storage_they_can_share(write_study, capsys):
    path = write_study()
    assert main(["run", str(path), "--storage", "sqlite://", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in-memory SQLite" in err and "PostgreSQL" in err
    assert main(["run", str(path), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_the_parent_of_local_workers_does_not_load_tensorflow(write_study, sqlite_url):
    """`run --workers N` counts and prints in the parent; only the workers import the engine
    (seconds of TensorFlow start-up, and a process that a stop signal could land in)."""
    path = write_study()
    probe = ("import sys, search.workers as w\n"
             "w.run_workers = lambda *a, **k: print('tensorflow loaded:',"
             " 'tensorflow' in sys.modules)\n"
             "from search.cli import main\n"
             f"sys.exit(main(['run', {str(path)!r}, '--storage', {sqlite_url!r},"
             " '--workers', '2', '--quiet']))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert "study 'tiny' in sqlite:///" in done.stdout
    assert "0 of 5 configurations done" in done.stdout
    assert "tensorflow loaded: False" in done.stdout
