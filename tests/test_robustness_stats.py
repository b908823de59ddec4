"""Robust score, relative corruption error and certification, against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.analysis.robustness import (
    certified_accuracy,
    certify,
    clopper_pearson_lower,
    relative_corruption_error,
    robust_scores,
)


def test_robust_score_is_the_area_under_the_profile_over_the_grid_width():
    # Uneven grid: trapezoids 0.05·(1+0.9)/2 + 0.15·(0.9+0.6)/2 = 0.0475 + 0.1125, over 0.2.
    scores = robust_scores([0.0, 0.05, 0.2], [[1.0, 0.9, 0.6], [0.7, 0.7, 0.7]])
    assert scores == pytest.approx([0.16 / 0.2, 0.7])
    assert robust_scores([0.1], [[0.8], [0.6]]) == pytest.approx([0.8, 0.6])
    with pytest.raises(ValueError, match="one column per test σ"):
        robust_scores([0.0, 0.1], [[1.0, 0.9, 0.8]])


def test_relative_corruption_error_is_the_ratio_of_summed_errors():
    # accuracy: errors 0.2+0.3 vs 0.25+0.5
    assert relative_corruption_error("accuracy", [0.8, 0.7], [0.75, 0.5]) == pytest.approx(
        0.5 / 0.75)
    # rmse is an error already
    assert relative_corruption_error("rmse", [1.0, 2.0], [2.0, 4.0]) == pytest.approx(0.5)
    assert relative_corruption_error("accuracy", [1.0], [1.0]) is None


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
