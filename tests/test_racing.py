"""Paired statistics and the race's decision rule, on known numbers and simulated races."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from search.analysis.paired import compare_paired
from search.analysis.racing import RaceSettings, decide


def test_paired_statistics_match_scipy_on_the_same_values():
    rng = np.random.default_rng(5)
    b = rng.normal(0.75, 0.03, 30)
    a = b + rng.normal(0.01, 0.01, 30)
    c = compare_paired(a, b, maximize=True)
    t = sps.ttest_rel(a, b)
    ci = t.confidence_interval(0.95)
    assert c.n == 30
    assert c.diff == pytest.approx(float(np.mean(a - b)))
    assert c.p_paired == pytest.approx(float(t.pvalue))
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((float(ci.low), float(ci.high)))
    assert c.p_wilcoxon == pytest.approx(float(sps.wilcoxon(a - b).pvalue))
    assert c.p_improve == pytest.approx(float(np.mean(a > b)))
    assert c.p_improve_low <= c.p_improve <= c.p_improve_high


def test_probability_of_improvement_counts_ties_as_half_and_follows_the_direction():
    a = np.array([0.8, 0.7, 0.7, 0.6])
    b = np.array([0.7, 0.7, 0.8, 0.6])
    assert compare_paired(a, b, maximize=True).p_improve == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert compare_paired(a, b, maximize=False).p_improve == pytest.approx((0 + 0.5 + 1 + 0.5) / 4)


def test_pairs_only_the_seeds_both_have():
    c = compare_paired([1.0, 2.0, 3.0], [0.0, 1.0, 2.5, 9.0, 9.0])
    assert c.n == 3 and c.diff == pytest.approx((1 + 1 + 0.5) / 3)


def test_constant_differences_get_the_exact_sign_flip_p_never_zero():
    same = compare_paired([0.5, 0.75, 1.0], [0.5, 0.75, 1.0])
    assert same.p_paired == 1.0 and same.p_wilcoxon is None and same.test == "sign-flip"
    shifted = compare_paired([0.75, 1.0, 1.25], [0.5, 0.75, 1.0])
    # Three seeds moved by the same amount: 2 of the 2³ sign vectors are as extreme.
    assert shifted.p_paired == 0.25
    # ... and no shift can be rejected at 5% with three seeds: the interval is unbounded.
    assert (shifted.diff_ci_low, shifted.diff_ci_high) == (-np.inf, np.inf)
    thirty = compare_paired(np.full(30, 0.8), np.full(30, 0.7))
    assert thirty.p_paired == pytest.approx(2 / 2 ** 30) and thirty.p_paired > 0
    assert thirty.diff_ci_low == thirty.diff_ci_high == pytest.approx(0.1)


def test_checkpoints_and_looks():
    s = RaceSettings(first=5, each=5, alpha=0.05, test="t", maximum=30, configurations=33)
    assert s.checkpoints() == (5, 10, 15, 20, 25, 30)
    # Each test: alpha shared by the 5 looks and the 32 configurations that may be the rival.
    assert s.looks == 5 and s.rivals == 32 and s.level == pytest.approx(0.05 / 160)
    assert RaceSettings(5, 10, 0.05, "t", 12).checkpoints() == (5, 12)


def test_a_clearly_worse_configuration_stops_and_the_leader_and_baseline_never_do():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.03, 5)
    values = {"none": 0.77 + seed_effect, "hidden_pre:0.1": 0.80 + seed_effect + 0.002,
              "input:0.5": 0.45 + seed_effect + rng.normal(0, 0.01, 5)}
    stops = decide(values, "none", True, RaceSettings(5, 5, 0.05, "t", 30, 3))
    assert set(stops) == {"input:0.5"}
    assert "worse than" in stops["input:0.5"] and "after 5 seeds" in stops["input:0.5"]


def test_lower_is_better_metrics_race_the_other_way():
    rng = np.random.default_rng(1)
    e = rng.normal(0, 0.05, 10)
    values = {"none": 1.0 + e, "a:0.1": 0.9 + e, "b:0.1": 2.0 + e + rng.normal(0, 0.01, 10)}
    assert set(decide(values, "none", False, RaceSettings(5, 5, 0.05, "t", 30, 3))) == {"b:0.1"}


def _race(rng: np.random.Generator, means: dict[str, float], settings: RaceSettings,
          sd: float = 0.04, seed_sd: float = 0.03) -> dict[str, int]:
    """One simulated race: seeds run by configuration. Draws are paired through a shared
    seed effect, as common random numbers pair them in a study."""
    seed_effect = rng.normal(0, seed_sd, settings.maximum)
    draws = {k: m + seed_effect + rng.normal(0, sd, settings.maximum) for k, m in means.items()}
    racing = set(means)
    used = {k: settings.maximum for k in means}
    for n in settings.checkpoints()[:-1]:
        stops = decide({k: draws[k][:n] for k in racing}, "none", True, settings)
        for k in stops:
            used[k] = n
        racing -= set(stops)
    return used


def test_the_p_value_the_race_uses_is_the_paired_t_tests():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.8, 0.05, 12), rng.normal(0.78, 0.05, 12)
    from search.analysis.paired import paired_p

    assert paired_p(a - b) == pytest.approx(float(sps.ttest_rel(a, b).pvalue), rel=1e-9)


@pytest.mark.parametrize("test, max_share", [
    ("t", 0.6),
    # Signed ranks cannot reach p < 0.01 / 16 comparisons before about 15 seeds.
    pytest.param("wilcoxon", 0.8, marks=pytest.mark.slow),
])
def test_the_true_best_is_stopped_with_probability_at_most_alpha(test, max_share):
    """200 simulated races of a grid like the tutorial's: the true best (a small gain over
    the baseline, with near rivals) must be stopped in at most alpha of them, while the
    clearly worse configurations are stopped early (the race saves seeds)."""
    settings = RaceSettings(first=5, each=5, alpha=0.05, test=test, maximum=30,
                            configurations=13)
    means = {"none": 0.770, "best": 0.790, "near1": 0.785, "near2": 0.780, "same": 0.770,
             **{f"bad{i}": 0.70 - 0.03 * i for i in range(8)}}
    rng = np.random.default_rng(2024)
    races = 200
    best_stopped = 0
    seeds = 0
    for _ in range(races):
        used = _race(rng, means, settings)
        best_stopped += used["best"] < settings.maximum
        seeds += sum(used.values())
    assert best_stopped / races <= settings.alpha
    # Power: the bad configurations are decided long before 30 seeds.
    assert seeds / races < max_share * settings.maximum * len(means)
