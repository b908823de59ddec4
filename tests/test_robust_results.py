"""Results under test-time noise ([robustness]) against an independent NumPy / SciPy
computation on the per-seed values stored on the trials."""

from __future__ import annotations

import csv
import io
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
        # Hendrycks & Dietterich over σ > 0 on the mean profiles; E_0 at σ = 0 (column 0).
        own, ref = 1 - profile[k].mean(axis=0), 1 - profile["none"].mean(axis=0)
        assert row["ce"] == pytest.approx(own[1:].sum() / ref[1:].sum(), rel=1e-6)
        assert row["relative_ce"] == pytest.approx(
            (own[1:] - own[0]).sum() / (ref[1:] - ref[0]).sum(), rel=1e-6)
        # The fake's noise-trained models lose less: a relative CE below 1.
        assert row["relative_ce"] < 1
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
    baseline = next(r for r in rows if r["config"] == "none")
    assert baseline["ce"] == baseline["relative_ce"] == 1.0


def test_without_a_sigma_0_point_the_relative_ce_starts_from_the_clean_mean(robust_study):
    rows, stored, _ = robust_study(["robustness.input_std=[0.1, 0.2, 0.4]"])
    profile = {k: np.array([p["values"] for p in a["robustness"]]).T for k, a in stored.items()}
    clean = {k: np.mean(a["test_values"]) for k, a in stored.items()}
    for row in rows:
        k = row["config"]
        own, ref = 1 - profile[k].mean(axis=0), 1 - profile["none"].mean(axis=0)
        assert row["ce"] == pytest.approx(own.sum() / ref.sum(), rel=1e-6)
        assert row["relative_ce"] == pytest.approx(
            (own - (1 - clean[k])).sum() / (ref - (1 - clean["none"])).sum(), rel=1e-6)


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


def test_table_csv_and_recommendation_carry_the_ce_and_the_relative_ce(robust_study,
                                                                      sqlite_url, capsys):
    rows, _, _ = robust_study()
    by_config = {r["config"]: r for r in rows}
    assert main(["results", "tiny", "--storage", sqlite_url, "--wide"]) == 0  # one table
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("placement"))
    assert header.split()[-3:] == ["CE", "rel.", "CE"]
    for row in rows:
        line = next(li for li in out.splitlines() if li.startswith(row["placement"])
                    and f"{row['robust_mean']:.4f}" in li)
        assert line.split()[-2:] == [f"{row['ce']:.3f}", f"{row['relative_ce']:.3f}"]
    assert "CE: its errors summed over the test σ > 0" in out and "rel. CE: what the noise" in out
    # The recommendation's robustness sentence names both, with their reading (here of the
    # most robust configuration: the fake's noise-trained models lose less under noise).
    sentence = out[out.index("Under test-time noise"):]
    named = next(r for r in rows if f" {r['config']}, is (not significantly) more robust than "
                 f"the baseline: robust score" in sentence)
    assert f"CE {named['ce']:.3f} (fewer errors under noise than the baseline)" in sentence
    assert (f"relative CE {named['relative_ce']:.3f} (it degrades no faster than the baseline"
            in sentence)
    assert main(["results", "tiny", "--storage", sqlite_url, "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    for r in table:
        expected = by_config[r["config"]]
        assert float(r["ce"]) == pytest.approx(expected["ce"], rel=1e-12)
        assert float(r["relative_ce"]) == pytest.approx(expected["relative_ce"], rel=1e-12)
