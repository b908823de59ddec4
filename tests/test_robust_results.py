"""Results under test-time noise ([robustness]) against an independent NumPy / SciPy
computation on the per-seed values stored on the trials."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from scipy import stats as sps

from search.cli import main
from tests.conftest import TINY_STUDY

ROBUST = TINY_STUDY.replace("repeats = 3", "repeats = 6") + """
[robustness]
input_std = [0.0, 0.1, 0.2, 0.4]
"""


def _holm(p: list[float]) -> list[float]:
    """Holm (1979) written out: sorted ascending, (m - k)·p, running max, capped at 1."""
    order = np.argsort(p)
    out, running = np.empty(len(p)), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        out[i] = running
    return list(out)


@pytest.fixture
def robust_study(write_study, sqlite_url, fake_engine, capsys):
    def run(sets=()):
        path = write_study(ROBUST)
        args = ["run", str(path), "--storage", sqlite_url, "--quiet"]
        assert main([*args, *(a for s in sets for a in ("--set", s))]) == 0
        capsys.readouterr()
        assert main(["results", "tiny", "--storage", sqlite_url, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        study = optuna.load_study(study_name="tiny", storage=sqlite_url)
        stored = {t.user_attrs["config"]: t.user_attrs for t in study.get_trials()}
        return rows, stored, study
    return run


def test_robust_statistics_match_numpy_on_the_stored_seeds(robust_study):
    rows, stored, _ = robust_study()
    grid = np.array([0.0, 0.1, 0.2, 0.4])
    profile = {k: np.array([p["values"] for p in a["robustness"]]).T for k, a in stored.items()}
    # The robust score per seed: trapezoid area under the profile / the grid's width.
    score = {k: np.array([sum((grid[i + 1] - grid[i]) * (v[i] + v[i + 1]) / 2
                              for i in range(3)) / 0.4 for v in p]) for k, p in profile.items()}
    for k in stored:
        np.testing.assert_allclose(stored[k]["robust_values"], score[k], atol=1e-6)
    base = score["none"]
    others = [r for r in rows if r["config"] != "none"]
    p_raw = [sps.ttest_rel(score[r["config"]], base).pvalue for r in others]
    for row, p_h in zip(others, _holm(p_raw)):
        k = row["config"]
        assert row["robust_mean"] == pytest.approx(score[k].mean(), abs=1e-6)
        assert row["robust_diff"] == pytest.approx((score[k] - base).mean(), abs=1e-6)
        assert row["robust_p_holm"] == pytest.approx(p_h, rel=1e-4)
        errors = (1 - profile[k].mean(axis=0)).sum() / (1 - profile["none"].mean(axis=0)).sum()
        assert row["relative_ce"] == pytest.approx(errors, rel=1e-6)
        assert [e["test_std"] for e in row["robustness"]] == list(grid)
        for i, entry in enumerate(row["robustness"]):
            col = profile[k][:, i]
            assert set(entry) == {"test_std", "mean", "sd", "ci_low", "ci_high", "n", "diff",
                                  "p_holm"}
            assert entry["n"] == 6 and entry["mean"] == pytest.approx(col.mean(), abs=1e-6)
            assert entry["sd"] == pytest.approx(col.std(ddof=1), rel=1e-4)
            low, _ = sps.t.interval(0.95, 5, loc=col.mean(), scale=sps.sem(col))
            assert entry["ci_low"] == pytest.approx(low, rel=1e-4)
            assert entry["diff"] == pytest.approx((col - profile["none"][:, i]).mean(),
                                                  abs=1e-6)
    # Noise-trained configurations lose less under test noise here (the fake's design).
    assert all(r["robust_diff"] > r["diff"] for r in others)


def test_robust_objective_ranks_and_tells_optuna_the_robust_score(robust_study):
    rows, stored, study = robust_study(["study.objective=robust"])
    means = [r["robust_mean"] for r in rows]
    assert means == sorted(means, reverse=True)
    for t in study.get_trials():
        assert t.value == pytest.approx(np.mean(t.user_attrs["robust_values"]), abs=1e-6)


def test_both_objectives_make_a_multi_objective_study_with_a_pareto_front(robust_study):
    rows, stored, study = robust_study(["study.objective=both"])
    assert len(study.directions) == 2
    for t in study.get_trials():
        assert t.values[0] == pytest.approx(t.user_attrs["test_mean"])
        assert t.values[1] == pytest.approx(t.user_attrs["robust_mean"])
    points = {r["config"]: (r["mean"], r["robust_mean"]) for r in rows}
    for r in rows:
        a, b = points[r["config"]]
        dominated = any(x >= a and y >= b and (x, y) != (a, b) for x, y in points.values())
        assert r["pareto"] is (not dominated)
    assert any(r["pareto"] for r in rows)
