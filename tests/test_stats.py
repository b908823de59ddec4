"""Repeat statistics against independent computations."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import warnings

import numpy as np
import pytest
from scipy.stats import t as student_t

from search.analysis import stats as stats_module
from search.analysis.stats import (
    bootstrap_ci,
    bounds_of,
    clip,
    cohen_d,
    compare,
    holm,
    summarize,
)


def test_summary_matches_textbook_formulas():
    values = [0.7, 0.75, 0.8, 0.78, 0.74]
    s = summarize(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    sem = sd / math.sqrt(len(values))
    t975_df4 = 2.7764451051977987  # Student t quantile, 4 degrees of freedom
    assert s.n == 5
    assert s.mean == pytest.approx(mean)
    assert s.sd == pytest.approx(sd)
    assert s.sem == pytest.approx(sem)
    assert s.ci_low == pytest.approx(mean - t975_df4 * sem)
    assert s.ci_high == pytest.approx(mean + t975_df4 * sem)


def test_identical_values_have_zero_spread():
    s = summarize([0.8] * 6)
    assert (s.mean, s.sd, s.sem, s.ci_low, s.ci_high) == (0.8, 0.0, 0.0, 0.8, 0.8)


def test_single_value_has_no_spread():
    s = summarize([0.5])
    assert s.n == 1 and s.mean == 0.5 and s.sd is None and s.ci_low is None


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


# --- bootstrap -----------------------------------------------------------------------------------

def _exact_bca(x, confidence=0.95):
    """BCa interval (Efron & Tibshirani 1993, ch. 14) over the *exact* bootstrap distribution.

    With n = 6 all 6**6 equally likely resamples can be listed, so there is no
    Monte Carlo error here. Ties at the estimate count half, the "mean" rule of
    percentileofscore, which is what scipy documents for z0.
    """
    from scipy.stats import norm

    x = np.asarray(x)
    n = x.size
    idx = np.array(list(itertools.product(range(n), repeat=n)))
    dist = x[idx].mean(axis=1)
    theta = x.mean()
    z0 = norm.ppf((np.sum(dist < theta) + np.sum(dist <= theta)) / (2 * dist.size))
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    d = jack.mean() - jack
    accel = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    z = norm.ppf((1 - confidence) / 2)
    lo = norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    hi = norm.cdf(z0 + (z0 - z) / (1 - accel * (z0 - z)))
    return tuple(np.quantile(dist, [lo, hi])), tuple(np.quantile(dist, [0.025, 0.975]))


def test_bootstrap_ci_is_the_bca_interval_of_the_exact_bootstrap_distribution(monkeypatch):
    # BCa is given from BCA_MIN_N seeds on; six values keep the exact distribution small.
    monkeypatch.setattr(stats_module, "BCA_MIN_N", 2)
    x = [0.70, 0.74, 0.75, 0.78, 0.80, 0.91]  # skewed: BCa and percentile differ
    (lo, hi), (p_lo, p_hi) = _exact_bca(x)
    assert hi - p_hi > 0.01  # the check below tells BCa from the plain percentile interval
    low, high = bootstrap_ci(x, n_resamples=200_000)
    assert low == pytest.approx(lo, abs=0.002) and high == pytest.approx(hi, abs=0.002)
    # The default resample count is close too, and the same call gives the same numbers.
    default = bootstrap_ci(x)
    assert default == bootstrap_ci(x)
    assert default == pytest.approx((lo, hi), abs=0.006)
    assert bootstrap_ci(x, seed=1) != default  # the seed, not luck, makes it repeatable


def test_bootstrap_of_identical_and_single_values_without_nan_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_ci([0.8] * 5) == (0.8, 0.8)
        assert bootstrap_ci([0.5]) == (None, None)
    with pytest.raises(ValueError):
        bootstrap_ci([])


# --- comparison with a reference -----------------------------------------------------------------

A = [0.81, 0.84, 0.80, 0.86, 0.83, 0.79, 0.85]
B = [0.76, 0.77, 0.80, 0.74, 0.78, 0.75, 0.79]


def test_welch_difference_p_value_and_interval_match_the_textbook():
    c = compare(A, B)
    ma, mb = statistics.fmean(A), statistics.fmean(B)
    va, vb = statistics.variance(A) / len(A), statistics.variance(B) / len(B)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))  # Welch–Satterthwaite
    t = (ma - mb) / se
    assert c.diff == pytest.approx(ma - mb)
    assert c.p_value == pytest.approx(2 * student_t.sf(abs(t), df))
    half = student_t.ppf(0.975, df) * se
    assert c.diff_ci_low == pytest.approx(ma - mb - half)
    assert c.diff_ci_high == pytest.approx(ma - mb + half)
    assert c.p_value < 0.05 and c.diff_ci_low > 0


def test_cohen_d_uses_the_pooled_sample_sd():
    # means 4 and 2, sds 2 and 1: pooled sd = sqrt((2·4 + 2·1) / 4) = sqrt(2.5)
    assert cohen_d([2, 4, 6], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2.5))
    pooled = math.sqrt(((len(A) - 1) * statistics.variance(A)
                        + (len(B) - 1) * statistics.variance(B)) / (len(A) + len(B) - 2))
    expected = (statistics.fmean(A) - statistics.fmean(B)) / pooled
    assert compare(A, B).cohen_d == pytest.approx(expected)
    assert compare(B, A).cohen_d == pytest.approx(-expected)


def test_wins_pair_seeds_and_follow_the_direction():
    values = [0.80, 0.70, 0.75, 0.90]
    reference = [0.75, 0.75, 0.75, 0.85]
    up = compare(values, reference, maximize=True)
    assert (up.pairs, up.wins, up.ties, up.losses) == (4, 2, 1, 1)
    assert up.win_share == 0.5 and up.tie_share == 0.25
    down = compare(values, reference, maximize=False)  # rmse: lower is better
    assert (down.wins, down.ties, down.losses) == (1, 1, 2)
    # Different repeat counts (one stopped early by racing): the seeds both have are paired.
    shared = compare(values, reference[:3])
    assert (shared.pairs, shared.wins, shared.ties, shared.losses) == (3, 1, 1, 1)


def test_bootstrap_ci_is_the_t_interval_below_bca_min_n_and_stays_in_the_metrics_range():
    x = [0.9, 1.0, 1.0]  # a t interval of three accuracies reaches past 1
    t = summarize(x)
    assert bootstrap_ci(x) == (t.ci_low, t.ci_high) and t.ci_high > 1.0
    bounded = bootstrap_ci(x, bounds=bounds_of("accuracy"))
    assert bounded == (t.ci_low, 1.0)
    assert summarize(x, bounds=bounds_of("accuracy")).ci_high == 1.0
    assert bounds_of("rmse") == (0.0, np.inf) and bounds_of("accuracy", difference=True) == (
        -1.0, 1.0)
    assert clip((-np.inf, 0.2), bounds_of("rmse")) == (0.0, 0.2)
    assert clip((-np.inf, np.inf), bounds_of("r2")) == (None, 1.0)


def test_identical_values_give_no_nan():
    same = compare([0.8] * 5, [0.8] * 5)
    assert (same.diff, same.diff_ci_low, same.diff_ci_high) == (0.0, 0.0, 0.0)
    assert same.p_value == 1.0 and same.cohen_d is None  # 0/0: no effect size
    assert same.ties == 5 and same.win_share == 0.0
    json.dumps(same.as_dict(), allow_nan=False)

    apart = compare([0.8] * 5, [0.7] * 5)  # both constant, different: the gap is exact
    # ... and the permutation test of the two samples is exact: 2 of C(10, 5) splits.
    assert apart.p_value == pytest.approx(2 / 252) and apart.diff_ci_low == pytest.approx(0.1)
    assert apart.diff_ci_high == pytest.approx(0.1) and apart.cohen_d is None
    assert apart.win_share == 1.0

    one_sided = compare([0.8] * 4, [0.7, 0.72, 0.74, 0.76])  # only the reference varies
    se = statistics.stdev([0.7, 0.72, 0.74, 0.76]) / 2
    t = (0.8 - 0.73) / se
    assert one_sided.p_value == pytest.approx(2 * student_t.sf(t, 3))
    json.dumps(one_sided.as_dict(), allow_nan=False)


def test_single_repeat_has_a_difference_but_no_test():
    c = compare([0.8], [0.7])
    assert c.diff == pytest.approx(0.1)
    assert (c.diff_ci_low, c.diff_ci_high, c.p_value, c.cohen_d) == (None, None, None, None)
    assert c.wins == 1


# --- Holm ----------------------------------------------------------------------------------------

def test_holm_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm") -> 0.05 0.08 0.09 0.09 0.09
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # R: p.adjust(c(0.2, 0.001, 0.04, 0.3), "holm") -> 0.4 0.004 0.12 0.4 (any input order)
    assert holm([0.2, 0.001, 0.04, 0.3]) == pytest.approx([0.4, 0.004, 0.12, 0.4])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.03, None, 0.01]) == pytest.approx([0.03, None, 0.02])  # None: not a test
    assert holm([]) == []


def test_holm_adjusted_p_is_the_level_at_which_the_step_down_procedure_rejects():
    rng = np.random.default_rng(7)
    for _ in range(50):
        p = list(rng.uniform(0, 0.1, size=rng.integers(1, 12)) ** 2)
        adjusted = holm(p)
        for alpha in (0.001, 0.005, 0.01, 0.05):
            # Step-down: reject in ascending order while p_(k) <= alpha / (m - k + 1).
            rejected = set()
            for k, i in enumerate(np.argsort(p, kind="stable")):
                if p[i] > alpha / (len(p) - k):
                    break
                rejected.add(int(i))
            assert rejected == {i for i, q in enumerate(adjusted) if q <= alpha}
