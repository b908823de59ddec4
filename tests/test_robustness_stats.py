"""Robust score, corruption errors (CE, relative CE) and certification, against hand-worked
numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.analysis.robustness import (
    certified_accuracy,
    certify,
    clopper_pearson_lower,
    corruption_errors,
    robust_scores,
)


def test_robust_score_is_the_area_under_the_profile_over_the_grid_width():
    # Uneven grid: trapezoids 0.05·(1+0.9)/2 + 0.15·(0.9+0.6)/2 = 0.0475 + 0.1125, over 0.2.
    scores = robust_scores([0.0, 0.05, 0.2], [[1.0, 0.9, 0.6], [0.7, 0.7, 0.7]])
    assert scores == pytest.approx([0.16 / 0.2, 0.7])
    assert robust_scores([0.1], [[0.8], [0.6]]) == pytest.approx([0.8, 0.6])
    with pytest.raises(ValueError, match="one column per test σ"):
        robust_scores([0.0, 0.1], [[1.0, 0.9, 0.8]])


GRID = [0.0, 0.1, 0.2]
BASELINE = [0.80, 0.75, 0.70]  # errors 0.20 | 0.25, 0.30: loses 0.05 + 0.10 under noise


def test_ce_and_relative_ce_by_hand_over_the_test_sigmas_above_zero():
    # errors 0.10 | 0.15, 0.25: CE (0.15 + 0.25) / (0.25 + 0.30); σ = 0 is left out of both
    # sums; relative CE (0.05 + 0.15) / (0.05 + 0.10).
    ce, rel = corruption_errors("accuracy", GRID, [0.90, 0.85, 0.75], BASELINE)
    assert ce == pytest.approx(0.40 / 0.55)
    assert rel == pytest.approx(0.20 / 0.15)
    # The baseline against itself.
    assert corruption_errors("accuracy", GRID, BASELINE, BASELINE) == pytest.approx((1.0, 1.0))


def test_better_clean_but_degrading_faster_has_ce_below_1_and_relative_ce_above_1():
    # errors 0.10 | 0.20, 0.28: fewer errors at every σ than the baseline, but the noise adds
    # 0.10 + 0.18 to its own clean error where it adds 0.05 + 0.10 to the baseline's.
    ce, rel = corruption_errors("accuracy", GRID, [0.90, 0.80, 0.72], BASELINE)
    assert ce == pytest.approx(0.48 / 0.55) and ce < 1
    assert rel == pytest.approx(0.28 / 0.15) and rel > 1
    # Worse clean, and holding up: CE above 1, relative CE below 1 (a gain: below 0).
    ce, rel = corruption_errors("accuracy", GRID, [0.70, 0.69, 0.68], BASELINE)
    assert ce == pytest.approx(0.63 / 0.55) and rel == pytest.approx(0.03 / 0.15)
    assert corruption_errors("accuracy", GRID, [0.70, 0.71, 0.70], BASELINE).relative_ce == \
        pytest.approx(-0.01 / 0.15)


def test_without_a_sigma_0_point_e0_is_the_clean_test_metric():
    stds, base, own = [0.1, 0.2], [0.75, 0.70], [0.80, 0.72]
    ce, rel = corruption_errors("accuracy", stds, own, base, clean=0.90, baseline_clean=0.80)
    assert ce == pytest.approx(0.48 / 0.55) and rel == pytest.approx(0.28 / 0.15)
    # The same numbers as the grid with σ = 0 (the clean metric is the σ = 0 point).
    assert (ce, rel) == pytest.approx(
        corruption_errors("accuracy", GRID, [0.90, *own], [0.80, *base]))
    # No clean metric either: the CE still stands, the relative CE cannot.
    assert corruption_errors("accuracy", stds, own, base) == pytest.approx((0.48 / 0.55, None))
    # With a σ = 0 point, the profile's value is E_0, not the clean metric.
    assert corruption_errors("accuracy", GRID, [0.90, 0.80, 0.72], BASELINE, clean=0.5,
                             baseline_clean=0.5).relative_ce == pytest.approx(0.28 / 0.15)


def test_each_metric_as_an_error():
    # rmse and mse are errors already: CE (2 + 4) / (1 + 2), relative CE
    # ((2 − 1) + (4 − 1)) / ((1 − 0.5) + (2 − 0.5)).
    assert corruption_errors("rmse", GRID, [1.0, 2.0, 4.0], [0.5, 1.0, 2.0]) == pytest.approx(
        (6.0 / 3.0, 4.0 / 2.0))
    assert corruption_errors("mse", [0.1], [2.0], [4.0], 1.0, 1.0) == pytest.approx((0.5, 1 / 3))
    # r2: error 1 − r2, 0.1 | 0.3, 0.5 against 0.2 | 0.3, 0.4.
    assert corruption_errors("r2", GRID, [0.9, 0.7, 0.5], [0.8, 0.7, 0.6]) == pytest.approx(
        (0.8 / 0.7, 0.6 / 0.3))


def test_undefined_ratios_are_none_never_nan_or_inf():
    # 0/0: a perfect baseline and configuration at every σ.
    assert corruption_errors("accuracy", GRID, [1.0] * 3, [1.0] * 3) == (None, None)
    # x/0: the baseline has no error under noise, the configuration has.
    assert corruption_errors("accuracy", GRID, [0.9, 0.9, 0.8], [1.0] * 3) == (None, None)
    # A baseline that does not degrade (flat, or better under noise): no relative CE.
    flat = corruption_errors("accuracy", GRID, [0.9, 0.8, 0.7], [0.8, 0.8, 0.8])
    assert flat.ce == pytest.approx(0.5 / 0.4) and flat.relative_ce is None
    assert corruption_errors("accuracy", GRID, [0.9, 0.8, 0.7], [0.8, 0.85, 0.8]).relative_ce \
        is None
    # Flat up to float rounding is flat: (0.1 + 0.2) − 0.3 is 5.6e-17, not 0.
    drift = corruption_errors("rmse", GRID, [1.0, 2.0, 3.0], [0.3, 0.1 + 0.2, 0.3])
    assert drift.relative_ce is None
    # No σ > 0: nothing to sum.
    assert corruption_errors("accuracy", [0.0], [0.9], [0.8]) == (None, None)
    # A diverged profile has no corruption error.
    assert corruption_errors("rmse", GRID, [1.0, float("nan"), 2.0], [1.0, 2.0, 3.0]) == (
        None, None)
    with pytest.raises(ValueError, match="one value per test σ"):
        corruption_errors("accuracy", GRID, [0.9, 0.8], BASELINE)


def test_clopper_pearson_lower_bound_by_hand():
    # All n successes: the bound solves p^n = alpha, so p = alpha^(1/n).
    assert clopper_pearson_lower(100, 100, 0.001) == pytest.approx(0.001 ** 0.01, rel=1e-9)
    assert clopper_pearson_lower(1, 1, 0.05) == pytest.approx(0.05)
    assert clopper_pearson_lower(0, 50, 0.05) == 0.0
    # k of n: P(Binomial(n, p̲) >= k) = alpha at the bound.
    from scipy import stats as sps

    p = clopper_pearson_lower(7, 10, 0.05)
    assert sps.binom.sf(6, 10, p) == pytest.approx(0.05, rel=1e-6)


def test_certify_gives_cohens_radius_or_abstains():
    sigma, alpha = 0.25, 0.001
    predicted, radius = certify([[2, 98], [60, 40], [50, 50]],
                                [[0, 100], [45, 55], [0, 100]], sigma, alpha)
    # Point 0: guess 1, 100 of 100 -> p̲ = 0.001^(1/100) = 0.93325, radius σ·Φ⁻¹(p̲).
    from scipy.stats import norm

    assert predicted[0] == 1
    assert radius[0] == pytest.approx(sigma * norm.ppf(0.001 ** 0.01))
    assert radius[0] == pytest.approx(0.3751, abs=1e-3)
    # Point 1: guess 0 wins 45 of 100 -> p̲ < 1/2: abstain.
    assert predicted[1] == -1 and radius[1] == 0.0
    # Point 2: a tie in selection picks the first class, which never wins estimation.
    assert predicted[2] == -1


def test_certified_accuracy_counts_correct_points_with_at_least_that_radius():
    acc = certified_accuracy([1, 0, -1, 1], [0.4, 0.1, 0.0, 0.2], [1, 0, 0, 0],
                             [0.0, 0.15, 0.5])
    assert acc == pytest.approx([0.5, 0.25, 0.0])
    assert not math.isnan(acc[0])
    assert np.all(np.diff(acc) <= 0)
