"""The paired statistics at few seeds: exact tests against brute force, each interval against
its own test, and the cases that used to give p = 0 (issue: a verdict right at any n)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from search.analysis import paired
from search.analysis.paired import (
    clopper_pearson,
    compare_paired,
    paired_test,
    seeds_needed,
    sign_flip_ci,
    sign_flip_p,
    wilcoxon_p,
)


def _brute_sign_flip(d: np.ndarray) -> float:
    observed = abs(d.sum())
    hits = [abs(np.dot(s, d)) >= observed - 1e-9
            for s in itertools.product((1.0, -1.0), repeat=d.size)]
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", range(6))
def test_sign_flip_p_is_the_enumerated_permutation_p(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    # Accuracies on 70 points: differences on a lattice, with zeros and ties.
    numerators = rng.integers(-3, 4, n)
    # The brute force counts on the integers (exact sums); the test on the accuracies.
    assert sign_flip_p(numerators / 70) == pytest.approx(
        _brute_sign_flip(numerators.astype(float)))


def test_no_exact_test_on_three_seeds_goes_below_a_quarter():
    for d in itertools.product((-2 / 70, -1 / 70, 0.0, 1 / 70, 3 / 70), repeat=3):
        p = compare_paired(np.add(0.7, d), np.full(3, 0.7)).p_paired
        assert p is not None and p >= 0.25


def test_differences_equal_up_to_float_rounding_are_constant():
    # 50/70 − 49/70 and 56/70 − 55/70 differ in the last bits (and by 1e-6 once stored with 6
    # decimals): still three identical differences, p = 2/2³, not 1e-14.
    a = np.array([50 / 70, 56 / 70, 51 / 70])
    b = np.array([49 / 70, 55 / 70, 50 / 70])
    assert compare_paired(a, b).p_paired == 0.25
    stored = np.round(a, 6) - np.round(b, 6)
    assert np.ptp(stored) > 0  # the rounding is real
    assert paired.paired_p(stored) == 0.25
    # At 30 seeds the t-test's zero-variance p = 0 is the exact 2/2³⁰ instead.
    assert paired.paired_p(np.full(30, 1 / 70)) == pytest.approx(2.0 ** -29)


@pytest.mark.parametrize("seed", range(8))
def test_every_interval_agrees_with_its_own_test(seed):
    """0 is outside the CI exactly when p < 1 − confidence, for the sign-flip test (its CI
    inverts it: Hartigan's subset means) and the t-test alike."""
    rng = np.random.default_rng(seed)
    for n in (3, 4, 6, 8, 12):
        d = rng.normal(0.01 * seed, 0.02, n) if n > paired.EXACT_MAX_N else rng.normal(
            0.02 * seed, 0.01, n)
        for confidence in (0.95, 0.99):
            if n <= paired.EXACT_MAX_N:
                low, high = sign_flip_ci(d, confidence)
                p = sign_flip_p(d)
            else:
                low, high, p, _ = paired_test(d, confidence)
            assert (low > 0 or high < 0) == (p < 1 - confidence)


def test_sign_flip_interval_bounds_are_where_the_test_starts_rejecting():
    d = np.array([0.01, 0.03, 0.02, 0.05, -0.01, 0.04, 0.02, 0.06])
    low, high = sign_flip_ci(d, 0.95)

    def p_at(delta: float) -> float:
        return sign_flip_p(d - delta)

    assert p_at(low) >= 0.05 and p_at(high) >= 0.05
    assert p_at(low - 1e-4) < 0.05 and p_at(high + 1e-4) < 0.05


def test_three_seeds_cannot_bound_a_difference():
    low, high = sign_flip_ci(np.array([0.01, 0.02, 0.03]), 0.95)
    assert (low, high) == (-math.inf, math.inf)


def test_exact_wilcoxon_with_ties_matches_scipys_permutation_version():
    d = np.array([1, 1, 2, 2, -1, 3, 0, 2]) / 70  # ties and a zero
    reference = sps.wilcoxon(d[d != 0], method=sps.PermutationMethod(n_resamples=np.inf))
    assert wilcoxon_p(d) == pytest.approx(float(reference.pvalue))
    assert wilcoxon_p(np.zeros(5)) is None


def test_probability_of_improvement_interval_never_collapses():
    a, b = np.full(10, 0.9), np.full(10, 0.8)
    c = compare_paired(a, b)
    assert c.p_improve == 1.0
    assert c.p_improve_low == pytest.approx(float(sps.beta.ppf(0.025, 10, 1)))  # 0.69
    assert c.p_improve_high == 1.0
    low, high = clopper_pearson(2.5, 5)  # ties count one half
    assert 0 < low < 0.5 < high < 1


def test_seeds_needed_gives_the_planned_power():
    """Simulated: at the planned n the paired t-test finds the effect about 80% of the time,
    at n − 3 clearly less."""
    effect = 0.6
    d = np.array([effect + z for z in (-1.0, -0.5, 0.0, 0.5, 1.0)])  # sd 0.79, mean 0.6
    n = seeds_needed(d)
    assert n is not None
    rng = np.random.default_rng(1)
    true = float(d.mean() / d.std(ddof=1))

    def power(m: int) -> float:
        draws = rng.normal(true, 1.0, (4000, m))
        return float(np.mean(sps.ttest_1samp(draws, 0.0, axis=1).pvalue < 0.05))

    assert power(n) == pytest.approx(0.8, abs=0.03)
    assert power(n - 3) < 0.75
    assert seeds_needed(np.zeros(5)) is None and seeds_needed(np.full(5, 0.1)) is None
    # Below EXACT_MAX_N + 1 nothing can be significant: never plan for fewer.
    assert seeds_needed(np.array([0.5, 0.6, 0.55, 0.52, 0.58])) == paired.EXACT_MAX_N + 1
