"""The Python API (search.api): what the CLI prints is what it returns; errors are
exceptions; DataFrames at three levels; the notebook-style walk-through runs."""

from __future__ import annotations

import builtins
import json
import runpy
from pathlib import Path

import pytest

import search
from search.cli import main
from search.errors import NoiseSearchError, SpecError, StorageError, StudyError
from tests.conftest import ROBUSTNESS_SECTION, TINY_STUDY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(write_study, sqlite_url, fake_engine):
    """A finished tiny study with [robustness], run through the API (fake training)."""
    path = write_study(TINY_STUDY + ROBUSTNESS_SECTION)
    study = search.run(path, storage=sqlite_url, quiet=True)
    return study, path


def test_run_returns_the_study_and_its_results_are_the_clis(tiny, sqlite_url, capsys):
    study, _ = tiny
    assert study.name == "tiny" and study.storage == sqlite_url
    results = study.results()
    capsys.readouterr()
    assert main(["results", "tiny", "--storage", sqlite_url, "--format", "json"]) == 0
    printed = capsys.readouterr().out
    # The CLI prints what the API returns, byte for byte.
    assert printed == results.to_json() + "\n"
    assert json.loads(json.dumps(results.rows)) == json.loads(printed)
    assert main(["results", "tiny", "--storage", sqlite_url, "--format", "csv"]) == 0
    assert capsys.readouterr().out == results.to_csv()
    assert main(["results", "tiny", "--storage", sqlite_url, "--format", "json",
                 "--with-recommendation"]) == 0
    assert capsys.readouterr().out == results.to_json(with_recommendation=True) + "\n"
    assert results.recommendation.decision in ("noise", "no noise", "not significant")
    assert main(["results", "tiny", "--storage", sqlite_url]) == 0
    assert results.recommendation.text in capsys.readouterr().out


def test_overrides_are_set_items(write_study, sqlite_url, fake_engine):
    path = write_study()
    study = search.run(path, overrides={"study.repeats": 4, "study.name": "four",
                                        "noise.std": [0.1]}, storage=sqlite_url, quiet=True)
    rows = study.results().rows
    assert study.name == "four" and {r["n"] for r in rows} == {4}
    assert {r["std"] for r in rows if r["config"] != "none"} == {0.1}
    assert search.api.override_items({"a.b": "x\"y", "c.d": [1, 2.5], "e.f": True}) == [
        'a.b="x\\"y"', "c.d=[1, 2.5]", "e.f=true"]


def test_dataframes_at_three_levels(tiny):
    results = tiny[0].results()
    configs = results.to_pandas()
    assert list(configs["config"]) == [r["config"] for r in results.rows]
    assert {"mean", "diff", "p_paired", "p_holm", "seeds_needed", "ce"} <= set(configs.columns)
    seeds = results.to_pandas("seed")
    assert len(seeds) == sum(r["n"] for r in results.rows)
    one = seeds[seeds["config"] == "none"].sort_values("repeat")
    assert list(one["value"]) == results.values["none"]
    assert list(one["robust_score"]) == results.robust_values["none"]
    # The fake trainer's train value is its test value + 0.05, seed by seed.
    assert (seeds["train_value"] - seeds["value"]).round(6).eq(0.05).all()
    profile = results.to_pandas("profile")
    stds = {p["test_std"] for r in results.rows for p in r["robustness"]}
    assert len(profile) == len(results.rows) * len(stds)
    assert {"config", "test_std", "mean", "ci_low", "diff", "p_holm"} <= set(profile.columns)
    with pytest.raises(NoiseSearchError, match="'level' must be one of 'config', 'seed', "
                                                "'profile'; got 'trial'"):
        results.to_pandas("trial")


def test_to_pandas_without_pandas_says_how_to_install_it(tiny, monkeypatch):
    real = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(NoiseSearchError) as err:
        tiny[0].results().to_pandas()
    assert str(err.value) == ("to_pandas needs pandas: pip install 'noise-search[pandas]' "
                              "(or pip install pandas)")


def test_open_compare_figures_report_studies_and_delete(tiny, sqlite_url, tmp_path, capsys):
    opened = search.open_study("tiny", storage=sqlite_url)
    pair = opened.compare("input:0.1", "none")
    capsys.readouterr()
    assert main(["compare", "tiny", "input:0.1", "none", "--storage", sqlite_url,
                 "--format", "json"]) == 0
    printed = capsys.readouterr().out
    assert printed == pair.to_json() + "\n"
    assert json.loads(printed)["p_paired"] == pair.p_paired == pair.paired.p_paired
    assert (pair.diff, pair.n, pair.test) == (pair.paired.diff, pair.paired.n, pair.paired.test)
    with pytest.raises(AttributeError, match="no attribute 'p_nonsense'"):
        pair.p_nonsense  # noqa: B018
    assert pair.verdict == opened.verdict("input:0.1", "none")
    assert pair.verdict.startswith("the baseline (no noise) has")
    assert main(["compare", "tiny", "input:0.1", "none", "--storage", sqlite_url]) == 0
    assert f"verdict: {pair.verdict}" in capsys.readouterr().out
    figures = opened.figures()
    assert {"heatmap", "repeats", "profiles"} <= set(figures)
    assert type(figures["heatmap"]).__name__ == "Figure"
    page = opened.report(tmp_path / "r.html", boundaries=False)
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert [s.name for s in search.studies(sqlite_url)] == ["tiny"]
    opened.delete()
    assert search.studies(sqlite_url) == []


def test_errors_are_exceptions_never_system_exit(tiny, write_study, sqlite_url, tmp_path):
    with pytest.raises(StudyError, match="no study named 'nope' in this storage; studies: "
                                         "tiny"):
        search.open_study("nope", storage=sqlite_url)
    with pytest.raises(StorageError, match="no such database file"):
        search.open_study("tiny", storage=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with pytest.raises(SpecError, match="'study.repeats' must be"):
        search.run(write_study(), overrides={"study.repeats": 0}, storage=sqlite_url)
    with pytest.raises(NoiseSearchError, match="overrides: a value must be"):
        search.run(write_study(), overrides={"study.repeats": object()}, storage=sqlite_url)


@pytest.mark.slow
def test_the_walkthrough_runs(monkeypatch, tmp_path, capsys):
    """docs/api_walkthrough.py, the notebook-style example of the README, end to end with
    real training (a few seconds)."""
    monkeypatch.setenv("NOISE_SEARCH_STORAGE", f"sqlite:///{tmp_path / 'walk.db'}")
    runpy.run_path(str(ROOT / "docs" / "api_walkthrough.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Study('walkthrough'" in out and "paired_test" in out
    assert "hidden_pre:0.3" in out and "['curves', 'gap', 'heatmap'" in out
