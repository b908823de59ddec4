"""Where noise-search catches errors on purpose: only the failures it expects, never a bug."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from search.report.dashboard import save_after_run
from search.study.heartbeat import Heartbeat
from search.study.record import DASHBOARD_STAMP_ATTR


class _Storage:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0
        self.beat = threading.Event()

    def record_heartbeat(self, trial_id: int) -> None:
        self.calls += 1
        self.beat.set()
        raise self.error


def test_the_heartbeat_survives_an_outage_but_not_a_bug():
    outage = _Storage(sa.exc.OperationalError("SELECT 1", {}, Exception("server closed")))
    with Heartbeat(outage, 1, 0.01):  # type: ignore[arg-type]
        for _ in range(200):
            if outage.calls >= 3:
                break
            threading.Event().wait(0.01)
    assert outage.calls >= 3  # kept beating through the outage

    bug = _Storage(TypeError("a bug"))
    seen: list[type[BaseException]] = []
    previous, threading.excepthook = threading.excepthook, lambda a: seen.append(a.exc_type)
    try:
        with Heartbeat(bug, 1, 0.01):  # type: ignore[arg-type]
            bug.beat.wait(5)
            threading.Event().wait(0.05)
    finally:
        threading.excepthook = previous
    assert seen == [TypeError] and bug.calls == 1  # the bug ended the thread, visibly


class _Study:
    def __init__(self) -> None:
        self.user_attrs: dict[str, str] = {}

    def set_user_attr(self, key: str, value: str) -> None:
        self.user_attrs[key] = value


class _Results:
    completed = [{"trial": 0}, {"trial": 2}]


def test_dashboard_drawing_after_a_run_gives_its_claim_back_on_a_storage_failure(monkeypatch):
    from search.storage import connect

    # A storage gone for good: retried for the patience (120 s by default), then a warning.
    monkeypatch.setattr(connect, "OUTAGE_PATIENCE_SECONDS", 0.5)
    study, warnings = _Study(), []

    def storage_gone():
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed"))

    def build():  # as the CLI's: the reading is retried, the drawing (it may train) is not
        return connect.retrying(storage_gone, "reading the study for the figures")

    assert save_after_run(study, _Results(), build, warnings.append) is None  # type: ignore[arg-type]
    assert len(warnings) == 1
    assert warnings[0].startswith("figures for optuna-dashboard not saved: lost the storage "
                                  "while reading the study for the figures and it did not come "
                                  "back within 0 s: ")
    assert warnings[0].endswith("server closed")
    assert study.user_attrs[DASHBOARD_STAMP_ATTR] == ""  # the next worker draws again


def test_dashboard_drawing_after_a_run_does_not_hide_a_bug():
    study = _Study()

    def bug():
        raise AttributeError("a bug")

    with pytest.raises(AttributeError):
        save_after_run(study, _Results(), bug, lambda message: None)  # type: ignore[arg-type]


def test_workers_finishing_together_draw_once(monkeypatch):
    from search.report import dashboard

    study, built = _Study(), []
    monkeypatch.setattr(dashboard, "save_to_dashboard", lambda study_, data: 6)

    def build():
        built.append(1)
        return "report data"

    assert save_after_run(study, _Results(), build, lambda m: None) == 6  # type: ignore[arg-type]
    assert study.user_attrs[DASHBOARD_STAMP_ATTR] == "0,2"  # claimed: these trials are drawn
    # The next worker to finish sees the same completed trials and draws nothing.
    assert save_after_run(study, _Results(), build, lambda m: None) is None  # type: ignore[arg-type]
    assert built == [1]


def _raised(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as exc:
        return exc


def test_an_outage_is_found_anywhere_in_the_chain_and_bad_data_is_not_one():
    """A server gone in the middle of a commit reaches us as Optuna's StorageInternalError
    over whatever SQLAlchemy raised: the driver's error, or a session it left unusable."""
    import optuna

    from search.storage.connect import is_outage

    gone = sa.exc.OperationalError("COMMIT", {}, Exception("terminating connection"))
    internal = optuna.exceptions.StorageInternalError
    assert is_outage(_raised(internal("commit"), gone))
    deeper = _raised(internal("commit"), _raised(sa.exc.StatementError("s", "x", {}, None), gone))
    assert is_outage(deeper)
    for left_unusable in (sa.exc.PendingRollbackError("rolled back"),
                          sa.exc.ResourceClosedError("This Connection is closed")):
        assert is_outage(_raised(internal("commit"), left_unusable))
    # A full disk is never an outage (waiting rarely helps), however deep it lies.
    import sqlite3

    full = sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(
        "database or disk is full"))
    assert not is_outage(_raised(internal("commit"),
                                 _raised(sa.exc.StatementError("s", "x", {}, None), full)))
    bad = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_outage(_raised(internal("commit"), bad))
    assert not is_outage(_raised(internal("commit"), sa.exc.DataError("x", {}, Exception("long"))))
