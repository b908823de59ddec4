"""Racing with 3 worker processes on SQLite and PostgreSQL, one SIGKILLed mid-block: every
(configuration, block) is trained to the end and recorded exactly once, and the race ends
as a single worker's would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.storage import open_storage
from search.study import record

ROOT = Path(__file__).resolve().parents[1]

STUDY = """\
[study]
name = "race"
seed = 5
repeats = 15
record_every = 5

[data]
dataset = "circles"
n_samples = 60
noise = 0.1
random_state = 1
n_train = 20

[model]
hidden = [8]
epochs = 10

[noise]
placements = ["input", "hidden_pre"]
std = [0.1, 0.2, 0.3]

[racing]
first = 5
each = 5
"""


def _spawn(path: Path, url: str, log: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, NOISE_SEARCH_HEARTBEAT="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("NOISE_SEARCH_STORAGE", None)
    with open(out, "w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "tests._race_worker", str(log), "run", str(path),
             "--storage", url, "--quiet"], stdout=sink, stderr=subprocess.STDOUT, env=env,
            cwd=path.parent)


def _events(log: Path) -> list[tuple[str, str, int, int, int]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        what, key, start, stop, pid = line.split()
        out.append((what, key, int(start), int(stop), int(pid)))
    return out


def _in_training(log: Path, pid: int) -> bool:
    """``pid`` has started a block it has not finished."""
    started = Counter((k, a, b) for w, k, a, b, p in _events(log) if p == pid and w == "start")
    ended = Counter((k, a, b) for w, k, a, b, p in _events(log) if p == pid and w == "end")
    return bool(started - ended)


@pytest.mark.processes
def test_three_racing_workers_one_killed_every_block_once(storage_url, tmp_path):
    path = tmp_path / "race.toml"
    path.write_text(STUDY)
    log = tmp_path / "blocks.log"
    workers = [_spawn(path, storage_url, log, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        victim = workers[0]
        deadline = time.monotonic() + 120
        # Kill the victim in the middle of a block it trains after the first one, so that it
        # has recorded something and leaves something half done.
        while not (any(p == victim.pid and w == "end" for w, *_, p in _events(log))
                   and _in_training(log, victim.pid)):
            assert time.monotonic() < deadline, "the victim never trained a second block"
            assert victim.poll() is None, (tmp_path / "worker0.log").read_text()[-2000:]
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        for i, w in enumerate(workers[1:], 1):
            assert w.wait(180) == 0, (tmp_path / f"worker{i}.log").read_text()[-3000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    events = _events(log)
    ended = Counter((k, a, b) for w, k, a, b, _ in events if w == "end")
    assert set(ended.values()) == {1}, ended  # no block trained to the end twice
    (lost,) = [(k, a, b) for w, k, a, b, p in events if w == "start" and p == victim.pid
               and (k, a, b) not in {(k2, a2, b2) for w2, k2, a2, b2, p2 in events
                                     if w2 == "end" and p2 == victim.pid}]
    assert lost in ended  # the killed worker's block was trained again, by another worker
    storage = open_storage(storage_url)
    try:
        trials = optuna.load_study(study_name="race", storage=storage).get_trials()
    finally:
        storage.engine.dispose()
    final = {t.user_attrs["config"]: t for t in trials
             if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert sorted(final) == sorted(["none", *(f"{p}:{s}" for p in ("input", "hidden_pre")
                                              for s in (0.1, 0.2, 0.3))])
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    recorded = Counter()
    for key, t in final.items():
        blocks = record.stored_blocks(t)
        assert [b["repeats"] for b in blocks] == [[s, s + 5] for s in
                                                  range(0, t.user_attrs["repeats"], 5)]
        recorded.update((key, *b["repeats"]) for b in blocks)
        # The mean clean test curve over the seeds recorded (step = epoch), as in any study.
        curves = record.stored_curves(t)
        assert len(curves["test_metric"]) == t.user_attrs["repeats"]
        assert sorted(t.intermediate_values) == list(curves["epochs"])
    assert recorded == ended  # what was trained to the end is what was recorded, once
    assert final["none"].state == final["input:0.1"].state == TrialState.COMPLETE
    assert final["input:0.3"].state == TrialState.PRUNED
    assert final["input:0.3"].user_attrs["repeats"] == 5
