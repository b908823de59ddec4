"""`noise-search delete` on every backend: confirmation, running trials, unknown names, the
study lock and the retry policy; the SQL views stay and still answer."""

from __future__ import annotations

import io
import threading
import time

import optuna
import pytest
import sqlalchemy as sa

from search.cli import main
from search.storage import open_storage, study_lock
from search.views import ROBUSTNESS_VIEW, VIEW_NAME, refresh_view
from tests.test_results import BASE, GOOD, make_study
from tests.test_views import _profiled_study


def _names(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(url))


def _view_studies(url: str) -> tuple[set[str], set[str]]:
    """The study names in each view (the query fails if a view is gone or broken)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple({r[0] for r in conn.execute(sa.text(f"SELECT study_name FROM {view}"))}
                         for view in (VIEW_NAME, ROBUSTNESS_VIEW))  # type: ignore[return-value]
    finally:
        engine.dispose()


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


class _Terminal(io.StringIO):
    """Stdin that is a terminal, with the user's answer typed in."""

    def isatty(self) -> bool:
        return True


def test_delete_removes_the_study_and_keeps_the_views(storage_url, capsys):
    make_study(storage_url, {"none": BASE, "hidden_pre:0.1": GOOD}, name="mistake",
               waiting=("input:0.1",), failed=("input:0.3",))
    _profiled_study(storage_url, "keep", [0.0, 0.1], {"none": (0.8, [0.8, 0.7]),
                                                       "input:0.1": (0.85, [0.85, 0.8])})
    _profiled_study(storage_url, "robust_mistake", [0.0, 0.1], {"none": (0.8, [0.8, 0.7])})
    storage = open_storage(storage_url)
    refresh_view(storage)
    storage.engine.dispose()
    assert _view_studies(storage_url) == ({"mistake", "keep", "robust_mistake"},
                                          {"keep", "robust_mistake"})

    capsys.readouterr()
    assert main(["delete", "mistake", "--yes", "--storage", storage_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted study 'mistake' (4 trials) from ")
    assert main(["delete", "robust_mistake", "--yes", "--storage", storage_url]) == 0
    assert _names(storage_url) == ["keep"]
    assert _view_studies(storage_url) == ({"keep"}, {"keep"})  # still there, still queryable
    capsys.readouterr()
    assert main(["studies", "--storage", storage_url]) == 0
    assert capsys.readouterr().out.startswith("keep: 2/2 configurations complete")
    assert main(["results", "keep", "--storage", storage_url, "--format", "json"]) == 0


def test_an_unknown_name_lists_the_studies(storage_url, capsys):
    make_study(storage_url, {"none": BASE}, name="alpha")
    make_study(storage_url, {"none": BASE}, name="beta")
    capsys.readouterr()
    assert main(["delete", "gamma", "--yes", "--storage", storage_url]) == 2
    assert _error(capsys) == ("noise-search: error: no study named 'gamma' in this storage; "
                              "studies: alpha, beta")
    assert _names(storage_url) == ["alpha", "beta"]


def test_running_trials_are_refused_unless_forced(storage_url, capsys):
    study = make_study(storage_url, {"none": BASE}, name="busy", waiting=("input:0.1",))
    study.ask()
    study.ask()  # two RUNNING trials, as two workers would hold them
    capsys.readouterr()
    assert main(["delete", "busy", "--yes", "--storage", storage_url]) == 2
    assert _error(capsys) == (
        "noise-search: error: study 'busy' has 2 running trials (a worker may still be "
        "training them); stop its workers first, or pass --force to delete it anyway")
    assert _names(storage_url) == ["busy"]
    assert main(["delete", "busy", "--yes", "--force", "--storage", storage_url]) == 0
    assert _names(storage_url) == []


def test_without_yes_it_asks_and_without_a_terminal_it_refuses(storage_url, capsys,
                                                              monkeypatch):
    make_study(storage_url, {"none": BASE, "input:0.1": GOOD}, name="asked")
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: not a confirmation
    assert main(["delete", "asked", "--storage", storage_url]) == 2
    assert _error(capsys) == ("noise-search: error: delete asks for confirmation and stdin is "
                              "not a terminal; pass --yes to delete study 'asked'")
    for answer, code, kept in (("n\n", 1, ["asked"]), ("", 1, ["asked"]), ("y\n", 0, [])):
        monkeypatch.setattr("sys.stdin", _Terminal(answer))
        assert main(["delete", "asked", "--storage", storage_url]) == code
        out = capsys.readouterr().out
        assert out.startswith("delete study 'asked' (2 trials, 2 complete) from ")
        assert ("nothing deleted" in out) == (code == 1)
        assert _names(storage_url) == kept


def test_delete_waits_for_the_study_lock(storage_url):
    """A worker popping the queue holds the study's lock: the delete waits for it."""
    make_study(storage_url, {"none": BASE}, name="locked")
    storage = open_storage(storage_url)
    codes: list[int] = []
    deleter = threading.Thread(target=lambda: codes.append(
        main(["delete", "locked", "--yes", "--storage", storage_url])))
    try:
        with study_lock(storage, "locked"):
            deleter.start()
            time.sleep(1.0)
            assert _names(storage_url) == ["locked"] and not codes
        deleter.join(timeout=30)
    finally:
        storage.engine.dispose()
    assert codes == [0] and _names(storage_url) == []


def test_delete_waits_out_an_outage(storage_url, monkeypatch, capsys):
    make_study(storage_url, {"none": BASE}, name="flaky")
    real = optuna.storages.RDBStorage.delete_study
    calls: list[int] = []

    def flaky(self, study_id: int) -> None:
        calls.append(study_id)
        if len(calls) == 1:
            raise sa.exc.OperationalError("DELETE", {}, Exception("server closed the connection"))
        real(self, study_id)

    monkeypatch.setattr(optuna.storages.RDBStorage, "delete_study", flaky)
    assert main(["delete", "flaky", "--yes", "--storage", storage_url]) == 0
    assert len(calls) == 2 and _names(storage_url) == []
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["delete"], ["delete", "a", "--nope"]])
def test_usage_errors(argv, sqlite_url, capsys):
    assert main([*argv, "--storage", sqlite_url]) == 2
    assert "Traceback" not in capsys.readouterr().err
