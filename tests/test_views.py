"""The SQL view `noise_search_trials` on every backend: same numbers as `results --format json`,
created by the study runner, replaced when outdated, safe when workers race to create it."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search.analysis import robustness, stats
from search.cli import main
from search.engine._common import ENGINE_VERSION
from search.noise import SITE_NAMES, parse_config_key
from search.storage import open_storage
from search.study import record
from search.study.record import StudyMeta
from search.views import ROBUSTNESS_VIEW, VIEW_NAME, ensure_view, refresh_view
from tests.conftest import TINY_STUDY
from tests.test_results import BASE, GOOD, completed_record, make_study


def _view_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                f"SELECT * FROM {VIEW_NAME} ORDER BY study_name, trial_number")).mappings()]
    finally:
        engine.dispose()


def _results_json(url: str, study: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["results", study, "--storage", url, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _assert_row_matches(row: dict, result: dict) -> None:
    """One view row against the `results --format json` row of the same trial."""
    assert row["config"] == result["config"]
    assert row["placement"] == result["placement"]
    assert row["state"] == result["state"]
    assert row["kind"] == result["kind"]
    assert row["repeats"] == result["n"]
    assert row["metric"] == result["metric"]
    for column, key in (("test_mean", "mean"), ("test_sd", "sd"), ("test_sem", "sem"),
                        ("test_ci_low", "ci_low"), ("test_ci_high", "ci_high"),
                        ("train_mean", "train_mean"), ("duration_s", "duration_s")):
        assert row[column] == pytest.approx(result[key], rel=1e-12), column
    std = result["std"]
    sites = [] if result["placement"] == "none" else result["placement"].split("+")
    for site in SITE_NAMES:
        expected = (std[site] if isinstance(std, dict) else std) if site in sites else 0.0
        assert row[f"sigma_{site}"] == pytest.approx(expected), site


def test_a_run_creates_the_view_with_the_numbers_of_results(write_study, storage_url, capsys,
                                                            fake_engine):
    """The study runner's hook, end to end: a tiny study run on SQLite and PostgreSQL (with the
    fake trainer: the view's numbers are the point, not training)."""
    assert main(["run", str(write_study()), "--storage", storage_url, "--quiet"]) == 0
    view = _view_rows(storage_url)
    results = _results_json(storage_url, "tiny", capsys)
    assert len(view) == len(results) == 5
    by_trial = {r["trial_number"]: r for r in view}
    for result in results:
        row = by_trial[result["trial"]]
        assert row["study_name"] == "tiny"
        _assert_row_matches(row, result)
    assert sorted(r["test_mean"] for r in view) == pytest.approx(sorted(
        fake_engine.values(parse_config_key(r["config"]), 3).mean() for r in view))
    base = next(r for r in view if r["config"] == "none")
    assert base["placement"] == "none" and all(base[f"sigma_{s}"] == 0.0 for s in SITE_NAMES)


def test_view_has_one_row_per_trial_of_every_noise_search_study(storage_url, capsys):
    make_study(storage_url, {"none": BASE, "input+hidden_pre:hidden_pre=0.1,input=0.01": GOOD},
               name="first", waiting=("input:0.5",), failed=("hidden_pre:0.5",))
    make_study(storage_url, {"none": GOOD, "hidden_post:0.2": BASE}, name="second",
               metric="rmse", direction="minimize")
    plain = optuna.create_study(study_name="not-ours", storage=storage_url)
    plain.add_trial(optuna.trial.create_trial(value=1.0))
    storage = open_storage(storage_url)
    refresh_view(storage)
    storage.engine.dispose()

    view = _view_rows(storage_url)
    assert {r["study_name"] for r in view} == {"first", "second"}  # not other Optuna studies
    for name in ("first", "second"):
        rows = {r["trial_number"]: r for r in view if r["study_name"] == name}
        results = _results_json(storage_url, name, capsys)
        assert len(rows) == len(results)
        for result in results:
            row = rows[result["trial"]]
            if result["state"] == "COMPLETE":
                _assert_row_matches(row, result)
            else:
                assert row["state"] == result["state"] and row["config"] == result["config"]
                assert row["test_mean"] is None and row["repeats"] is None
    mixed = next(r for r in view if r["placement"] == "input+hidden_pre")
    assert (mixed["sigma_input"], mixed["sigma_hidden_pre"]) == (0.01, 0.1)
    failed = next(r for r in view if r["state"] == "FAIL")
    assert failed["failure"] == "error: boom" and failed["placement"] == "hidden_pre"


def test_view_is_created_once_and_replaced_when_outdated(storage_url):
    storage = open_storage(storage_url)
    engine = storage.engine
    try:
        with engine.begin() as conn:  # a view of the same name from an older version
            conn.execute(sa.text(f"CREATE VIEW {VIEW_NAME} AS SELECT 1 AS old_column"))
        assert ensure_view(engine) is True
        assert ensure_view(engine) is False  # current: nothing written
        with engine.connect() as conn:
            columns = list(conn.execute(sa.text(f"SELECT * FROM {VIEW_NAME}")).keys())
        assert columns[:3] == ["study_name", "trial_number", "state"]
        assert "old_column" not in columns and "test_ci_high" in columns
    finally:
        engine.dispose()


def test_stored_nan_does_not_break_the_view(storage_url):
    study = make_study(storage_url, {"none": BASE})
    # Python's json writes NaN, which is not JSON; the view must still read the other rows.
    study.add_trial(optuna.trial.create_trial(
        value=0.5, user_attrs={"config": "input:0.1", "placement": "input",
                               "test_mean": float("nan"), "duration_s": float("inf")}))
    storage = open_storage(storage_url)
    refresh_view(storage)
    storage.engine.dispose()
    rows = {r["config"]: r for r in _view_rows(storage_url)}
    assert rows["input:0.1"]["test_mean"] is None and rows["input:0.1"]["duration_s"] is None
    assert rows["none"]["test_mean"] == pytest.approx(sum(BASE) / len(BASE))


def _race(engines: list[sa.Engine], force: bool) -> tuple[list[bool], list[BaseException]]:
    """Every engine (a worker with its own connections) calls ensure_view at the same moment."""
    barrier = threading.Barrier(len(engines))
    written: list[bool] = []
    errors: list[BaseException] = []

    def worker(engine: sa.Engine) -> None:
        try:
            barrier.wait()
            written.append(ensure_view(engine, force=force))
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return written, errors


def test_workers_racing_to_create_the_view_all_succeed(storage_url):
    """Without the advisory lock, PostgreSQL fails most of them: duplicate key value violates
    unique constraint "pg_type_typname_nsp_index" (two CREATE VIEW of one name at once)."""
    make_study(storage_url, {"none": BASE, "input:0.1": GOOD})
    engines = [open_storage(storage_url).engine for _ in range(6)]
    try:
        for _ in range(3):  # every worker drops and creates: a new version rolling out
            written, errors = _race(engines, force=True)
            assert errors == [] and written == [True] * 6
        with engines[0].begin() as conn:
            conn.execute(sa.text(f"DROP VIEW {VIEW_NAME}"))
        # Workers starting together on a fresh database: one creates, the others find it.
        written, errors = _race(engines, force=False)
        assert errors == [] and sorted(written) == [False] * 5 + [True]
    finally:
        for engine in engines:
            engine.dispose()
    assert len(_view_rows(storage_url)) == 2


def test_refresh_view_reports_instead_of_failing(storage_url, caplog):
    storage = open_storage(storage_url)
    engine = storage.engine
    try:
        with engine.begin() as conn:  # a table in the way: the view cannot be created
            conn.execute(sa.text(f"CREATE TABLE {VIEW_NAME} (x INTEGER)"))
        refresh_view(storage)  # does not raise: the study must go on
        assert f"could not create the SQL view {VIEW_NAME}" in caplog.text
    finally:
        engine.dispose()


ROBUST_STUDY = TINY_STUDY + """
[robustness]
input_std = [0.0, 0.1, 0.3]
"""


def _robustness_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(
                f"SELECT * FROM {ROBUSTNESS_VIEW} ORDER BY trial_number, test_std")).mappings()]
    finally:
        engine.dispose()


def test_robustness_view_has_a_row_per_trial_and_test_sigma_with_the_numbers_of_results(
        write_study, storage_url, capsys, fake_engine):
    assert main(["run", str(write_study(ROBUST_STUDY)), "--storage", storage_url,
                 "--quiet"]) == 0
    results = {r["trial"]: r for r in _results_json(storage_url, "tiny", capsys)}
    rows = _robustness_rows(storage_url)
    assert len(rows) == 5 * 3
    for row in rows:
        result = results[row["trial_number"]]
        assert row["study_name"] == "tiny" and row["config"] == result["config"]
        assert row["state"] == "COMPLETE"
        entry = next(e for e in result["robustness"] if e["test_std"] == row["test_std"])
        assert row["n"] == entry["n"] == 3
        for key in ("mean", "sd", "ci_low", "ci_high"):
            assert row[key] == pytest.approx(entry[key], rel=1e-12), key
    trials = {r["trial_number"]: r for r in _view_rows(storage_url)}
    for number, result in results.items():
        assert trials[number]["robust_mean"] == pytest.approx(result["robust_mean"], rel=1e-12)
        # The corruption errors, computed in SQL from the stored mean profiles.
        for key in ("ce", "relative_ce"):
            assert trials[number][key] == pytest.approx(result[key], rel=1e-6), key
    # The README's example query: the profile of each configuration, σ by σ.
    engine = sa.create_engine(storage_url)
    try:
        with engine.connect() as conn:
            worst = conn.execute(sa.text(
                f"SELECT config, mean FROM {ROBUSTNESS_VIEW} WHERE study_name = 'tiny' "
                "AND test_std = 0.3 ORDER BY mean DESC")).all()
    finally:
        engine.dispose()
    assert [c for c, _ in worst][0] != "none"  # the fake's noise-trained models hold up better


def test_a_study_without_robustness_has_no_robustness_rows(write_study, storage_url,
                                                           fake_engine):
    assert main(["run", str(write_study()), "--storage", storage_url, "--quiet"]) == 0
    assert _robustness_rows(storage_url) == []
    assert all(r["robust_mean"] is None and r["ce"] is None and r["relative_ce"] is None
               for r in _view_rows(storage_url))


def _profiled_study(url: str, name: str, grid: list[float],
                    profiles: dict[str, tuple[float, list[float]]]) -> None:
    """A study of completed configurations, key -> (clean accuracy, mean profile over
    ``grid``), each of two identical seeds: written directly, the numbers chosen by hand."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    meta = StudyMeta({"study": {"name": name, "sampler": "grid"}}, tuple(profiles), "accuracy",
                     "maximize", ENGINE_VERSION)
    for key, value in meta.to_attrs().items():
        study.set_user_attr(key, value)
    for key, (clean, profile) in profiles.items():
        values = np.array([profile, profile])
        scores = robustness.robust_scores(grid, values)
        entries = tuple({"test_std": s, "n": 2, **{f: getattr(stats.summarize(col), f)
                                                   for f in record.SUMMARY_FIELDS},
                         "values": list(col)} for s, col in zip(grid, values.T))
        rec = replace(completed_record(key, [clean, clean]), profile=entries,
                      robust_values=tuple(scores), robust=stats.summarize(scores))
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=clean,
                                                  user_attrs=rec.to_attrs()))


def test_view_corruption_errors_without_sigma_0_and_where_undefined(storage_url, capsys):
    """The view's `ce` and `relative_ce` are `results`' (the same formula in SQL), per study
    against its own baseline: E_0 from the clean mean when the grid has no σ = 0, NULL where
    the baseline does not degrade."""
    # Better clean, degrading faster: errors 0.10 | 0.20, 0.28 against 0.20 | 0.25, 0.30.
    _profiled_study(storage_url, "no_zero", [0.1, 0.2], {
        "none": (0.80, [0.75, 0.70]), "hidden_pre:0.1": (0.90, [0.80, 0.72])})
    # A baseline that loses nothing under this noise: no relative CE for anyone.
    _profiled_study(storage_url, "flat", [0.0, 0.1], {
        "none": (0.80, [0.80, 0.80]), "input:0.1": (0.90, [0.90, 0.70])})
    storage = open_storage(storage_url)
    refresh_view(storage)
    storage.engine.dispose()
    view = {(r["study_name"], r["config"]): r for r in _view_rows(storage_url)}
    expected = {("no_zero", "hidden_pre:0.1"): (0.48 / 0.55, 0.28 / 0.15),
                ("no_zero", "none"): (1.0, 1.0),
                ("flat", "input:0.1"): (0.30 / 0.20, None), ("flat", "none"): (1.0, None)}
    for (study, config), (ce, rel) in expected.items():
        result = next(r for r in _results_json(storage_url, study, capsys)
                      if r["config"] == config)
        for row in (view[study, config], result):
            assert row["ce"] == pytest.approx(ce, rel=1e-9)
            assert row["relative_ce"] == (None if rel is None else pytest.approx(rel, rel=1e-9))
