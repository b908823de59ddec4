"""Comparisons paired by seed: repeat r of every configuration starts from the same initial
weights and sees the same data order (common random numbers), so two configurations are
compared on the per-seed differences d_r = a_r − b_r, which cancel what the seed does to both.

Which test gives ``p_paired`` (and its interval) at which number of seeds n:

- n <= EXACT_MAX_N, or every difference the same: the **sign-flip permutation test**,
  exact by enumerating all 2ⁿ sign vectors. If the two configurations do the same thing,
  each d_r is as likely to be +|d_r| as −|d_r|, so this p-value is exact whatever the
  distribution of the differences: discrete accuracies, ties, zeros. Its smallest value is
  2/2ⁿ (0.5 at n = 2, 0.25 at n = 3, 0.125 at n = 4): two to four seeds cannot make a
  difference significant, and the tool says so instead of printing p = 0.
- n > EXACT_MAX_N: the paired t-test (two-sided). Measured by simulation under the null
  with accuracies on 70 test points (benchmarks/verdict_simulation.py), it keeps its level
  from 5 seeds on; EXACT_MAX_N is 4 so that racing can stop a clearly worse configuration
  after its first 5 seeds (docs/ARCHITECTURE.md, decision "exact tests at small n").

Each interval is the inversion of its own test (the t interval; for the sign-flip test,
Hartigan's subset means), so "the CI excludes 0" and "p < 1 − confidence" always agree.

Pure functions, scipy inside; nothing here imports TensorFlow or Optuna.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from search.analysis.stats import (
    CONFIDENCE,
    SIGNIFICANCE,
    TIE_TOLERANCE,
    bounds_of,
    clip,
    compare,
    holm,
)

# The sign-flip test is used at n <= EXACT_MAX_N seeds (and for constant differences at any n).
EXACT_MAX_N = 4
# The Wilcoxon signed-rank test is exact by enumeration up to this many non-zero differences,
# ties included (scipy's exact mode assumes no ties); beyond, scipy's normal approximation.
WILCOXON_EXACT_MAX_N = 16
# Power of the paired test that `seeds_needed` plans for, and the most seeds it looks at.
POWER = 0.8
SEEDS_NEEDED_MAX = 10_000


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``b`` over the seeds both have; None marks what is undefined.

    ``diff`` is mean(a_r − b_r) (= mean(a) − mean(b) on the shared seeds), whatever the
    direction; ``p_paired`` and the CI are one test's (``test``: "sign-flip" or "t", see the
    module's docstring); ``p_wilcoxon`` is the Wilcoxon signed-rank test's (zero differences
    dropped, as Wilcoxon proposed; exact with ties up to WILCOXON_EXACT_MAX_N).
    ``p_improve`` is the probability of improvement P(A better than B) over seeds
    (Bouthillier et al. 2021): the share of seeds on which ``a`` is better in the study's
    direction, a tie counting one half; its CI is Clopper–Pearson's on that count.
    ``seeds_needed``: how many seeds a paired t-test would need to find ``diff`` significant
    with 80% power, given the observed spread of the differences (None when it already is,
    or when the differences do not say: Δ = 0 or no spread).
    """

    n: int
    diff: float
    diff_ci_low: float | None
    diff_ci_high: float | None
    p_paired: float | None
    p_wilcoxon: float | None
    p_improve: float
    p_improve_low: float | None
    p_improve_high: float | None
    test: str | None = None
    seeds_needed: int | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


# --- the sign-flip permutation test ----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _signs(n: int) -> np.ndarray:
    """All 2ⁿ sign vectors as a (2ⁿ, n) matrix of ±1."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    return np.asarray(1.0 - 2.0 * bits)


def _clean(d: np.ndarray) -> np.ndarray:
    """Differences within TIE_TOLERANCE of zero are zero: stored values have 6 decimals, so
    0.714286 − 0.7 and 0.8 − 0.785714 are the same difference and 1e-7 is none."""
    return np.where(np.abs(d) <= TIE_TOLERANCE, 0.0, d)


def _is_constant(d: np.ndarray) -> bool:
    return bool(np.ptp(d) <= TIE_TOLERANCE) if d.size else True


def sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of the sign-flip permutation test of mean(d) = 0, by enumeration.

    P(|Σ s·d| >= |Σ d|) over the 2ⁿ equally likely sign vectors s (sums equal within the
    stored precision count as ties). Constant differences at any n: 2/2ⁿ (1 if all zero),
    the value enumeration would give.
    """
    d = _clean(np.asarray(d, dtype=np.float64))
    n = d.size
    if n == 0:
        raise ValueError("`len(d) >= 1` must hold, but got 0 differences.")
    zeros = int(np.sum(d == 0.0))
    if zeros == n:
        return 1.0
    if _is_constant(d):
        return min(1.0, 2.0 ** (1 + zeros - n))  # only "all +" and "all −" reach the sum
    if n > WILCOXON_EXACT_MAX_N:
        raise ValueError(f"`n <= {WILCOXON_EXACT_MAX_N}` must hold for enumeration; got {n}")
    sums = _signs(n) @ d
    observed = abs(float(d.sum()))
    return float(np.mean(np.abs(sums) >= observed - n * TIE_TOLERANCE))


def _subset_means(d: np.ndarray) -> np.ndarray:
    """Means of d over every non-empty subset of the seeds, sorted (Hartigan 1969)."""
    n = d.size
    member = (_signs(n)[1:] < 0)  # row k: the seeds in subset k (k = 0 is the empty set)
    return np.sort((member @ d) / member.sum(axis=1))


def sign_flip_ci(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """The values δ the sign-flip test of mean(d − δ) = 0 does not reject at 1 − confidence.

    The one-sided p of "mean > δ" is (1 + #{subset means <= δ}) / 2ⁿ, so each bound is an
    order statistic of the subset means; ±inf where no δ can be rejected (2/2ⁿ >= 1 −
    confidence: n <= 5 at 95%), left to the caller to bound by the metric's range.
    """
    d = _clean(np.asarray(d, dtype=np.float64))
    if _is_constant(d):
        # Every subset mean is the same value: every other δ is rejected once 2/2ⁿ < level.
        same = float(d.mean())
        if 2.0 ** (1 - d.size) < 1.0 - confidence:
            return same, same
        return -math.inf, math.inf
    means = _subset_means(d)
    tail = (1.0 - confidence) / 2.0
    # j-th smallest (1-based) with (1 + j) / 2ⁿ >= tail: the smallest δ not rejected.
    j = math.ceil(tail * 2 ** d.size - 1.0 - 1e-12)
    if j < 1:
        return -math.inf, math.inf
    return float(means[j - 1]), float(means[-j])


# --- the paired test at any n ----------------------------------------------------------------


def paired_test(d: ArrayLike, confidence: float = CONFIDENCE
                ) -> tuple[float | None, float | None, float | None, str | None]:
    """(CI low, CI high, two-sided p, test name) of mean(d) = 0, the test chosen by n.

    The CI's bounds may be ±inf (the sign-flip test at n <= 5 cannot exclude anything);
    results bound them by the metric's range.
    """
    x = _clean(np.asarray(d, dtype=np.float64))
    test = test_used(x)
    if test is None:
        return None, None, None, None
    if test == "sign-flip":
        low, high = sign_flip_ci(x, confidence)
        return low, high, sign_flip_p(x), "sign-flip"
    test = sps.ttest_1samp(x, 0.0)
    ci = test.confidence_interval(confidence_level=confidence)
    return (float(ci.low), float(ci.high), _finite_or_none(float(test.pvalue)), "t")


def test_used(d: ArrayLike) -> str | None:
    """Which test `paired_test` runs on these differences: "sign-flip", "t" or None."""
    x = _clean(np.asarray(d, dtype=np.float64))
    if x.size < 2:
        return None
    return "sign-flip" if x.size <= EXACT_MAX_N or _is_constant(x) else "t"


def paired_p(d: ArrayLike) -> float | None:
    """Two-sided p of `paired_test` alone (the race asks often, without a CI)."""
    x = _clean(np.asarray(d, dtype=np.float64))
    test = test_used(x)
    if test is None:
        return None
    if test == "sign-flip":
        return sign_flip_p(x)
    sd = float(np.std(x, ddof=1))
    t = float(np.mean(x)) / (sd / math.sqrt(x.size))
    return float(2.0 * sps.t.sf(abs(t), x.size - 1))


def _tie_groups(x: np.ndarray) -> np.ndarray:
    """Each value replaced by the smallest of its run of neighbours closer than
    TIE_TOLERANCE (sorted), so that values equal within the stored precision tie."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.concatenate(([True], np.diff(ordered) > TIE_TOLERANCE))
    grouped = np.empty_like(x)
    grouped[order] = ordered[starts][np.cumsum(starts) - 1]
    return grouped


def wilcoxon_p(d: ArrayLike) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test; None when every difference is zero.

    Zero differences are dropped (Wilcoxon's convention) and tied |d| get mid-ranks; up to
    WILCOXON_EXACT_MAX_N non-zero differences the p-value is exact, by enumerating the signs
    of the ranks (the sign-flip test on signed mid-ranks), ties included; beyond, scipy's.
    """
    x = _clean(np.asarray(d, dtype=np.float64))
    x = x[x != 0.0]
    if x.size == 0:
        return None
    if x.size <= WILCOXON_EXACT_MAX_N:
        return sign_flip_p(np.sign(x) * sps.rankdata(_tie_groups(np.abs(x))))
    # scipy: exact when there are no ties (up to 50), the normal approximation otherwise.
    result = sps.wilcoxon(x, zero_method="wilcox")
    return _finite_or_none(float(result.pvalue))


# --- probability of improvement --------------------------------------------------------------


def improvement_share(a: np.ndarray, b: np.ndarray, maximize: bool) -> np.ndarray:
    """Per seed: 1 where ``a`` is better than ``b`` in the study's direction, ½ on a tie."""
    gap = _clean(a - b)
    better = gap > 0 if maximize else gap < 0
    return better.astype(np.float64) + 0.5 * (gap == 0.0)


def clopper_pearson(successes: float, trials: int, confidence: float = CONFIDENCE
                    ) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval of a binomial proportion; ``successes`` may be a
    half-integer (a tie counts one half), which the beta quantiles take as they are."""
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes <= 0 else float(sps.beta.ppf(tail, successes,
                                                        trials - successes + 1))
    high = 1.0 if successes >= trials else float(sps.beta.ppf(1.0 - tail, successes + 1,
                                                             trials - successes))
    return low, high


def probability_of_improvement(a: np.ndarray, b: np.ndarray, maximize: bool,
                               confidence: float = CONFIDENCE,
                               ) -> tuple[float, float | None, float | None]:
    """P(A better than B) over seeds and its Clopper–Pearson interval (None at one seed).

    Clopper–Pearson covers at least the nominal level at every n, and 10 wins of 10 give
    [0.69, 1] rather than a bootstrap's [1, 1] (measured in benchmarks/verdict_simulation.py).
    """
    share = improvement_share(a, b, maximize)
    point = float(share.mean())
    if share.size < 2:
        return point, None, None
    low, high = clopper_pearson(float(share.sum()), int(share.size), confidence)
    return point, low, high


# --- planning ---------------------------------------------------------------------------------


def seeds_needed(d: ArrayLike, alpha: float = SIGNIFICANCE, power: float = POWER
                 ) -> int | None:
    """Seeds a two-sided paired test at level ``alpha`` needs to detect mean(d) with
    ``power``, if the differences' spread is what ``d`` shows (noncentral t).

    At least EXACT_MAX_N + 1, where the t-test takes over; None when d says nothing (mean 0
    or no spread) or more than SEEDS_NEEDED_MAX would be needed. The observed Δ of the best
    of many configurations is optimistic (winner's curse), so this is a lower bound on what
    a confirmation run needs.
    """
    x = _clean(np.asarray(d, dtype=np.float64))
    if x.size < 2 or _is_constant(x):
        return None
    effect = abs(float(x.mean())) / float(np.std(x, ddof=1))
    if effect == 0.0:
        return None
    def power_at(n: int) -> float:
        # The far tail (a significant difference of the wrong sign, < alpha / 2) is left out:
        # scipy's noncentral t returns NaN there for large noncentrality, and it helps no one.
        crit = float(sps.t.ppf(1.0 - alpha / 2.0, n - 1))
        power = float(sps.nct.sf(crit, n - 1, effect * math.sqrt(n)))
        return power if math.isfinite(power) else 1.0

    if power_at(SEEDS_NEEDED_MAX) < power:
        return None
    # From EXACT_MAX_N + 1 seeds on the t-test is the test (fewer cannot reach alpha).
    low, high = EXACT_MAX_N + 1, SEEDS_NEEDED_MAX
    if power_at(low) >= power:
        return low
    while high - low > 1:  # power grows with n: bisect for the first n that has enough
        mid = (low + high) // 2
        low, high = (low, mid) if power_at(mid) >= power else (mid, high)
    return high


# --- the comparison ---------------------------------------------------------------------------


def compare_paired(values: ArrayLike, reference: ArrayLike, maximize: bool = True,
                   confidence: float = CONFIDENCE, alpha: float = SIGNIFICANCE
                   ) -> PairedComparison:
    """Compare ``values`` with ``reference`` seed by seed (repeat r with repeat r).

    Only the seeds both have are paired (the first min(len) repeats: a configuration
    stopped early by racing has a prefix of the seeds of one that ran to the end).
    ``alpha`` is the level ``seeds_needed`` plans for (smaller for a Holm family).
    """
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    n = min(a.size, b.size)
    if n == 0:
        raise ValueError(f"both samples need a value; got {a.size} and {b.size}")
    a, b = a[:n], b[:n]
    d = a - b
    low, high, p, test = paired_test(d, confidence)
    p_improve, improve_low, improve_high = probability_of_improvement(a, b, maximize,
                                                                      confidence)
    needed = None
    if p is not None and p >= alpha:
        needed = seeds_needed(d, alpha)
    return PairedComparison(n, float(d.mean()), low, high, p, wilcoxon_p(d), p_improve,
                            improve_low, improve_high, test, needed)


# --- a family of comparisons with the baseline ------------------------------------------------


@dataclass(frozen=True)
class Versus:
    """A configuration's per-seed values against the baseline's, as the results show it:
    paired on the seeds both have (``diff`` and its CI, ``p_paired`` from ``paired_test``,
    ``p_wilcoxon``, P(better)), Holm-adjusted over the study's comparisons (``p_holm``,
    ``seeds_needed`` when not significant after it), and unpaired for reference (``p_welch``,
    ``cohen_d``; ``win_share`` / ``tie_share`` on the shared seeds). The field order is the
    JSON's."""

    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_paired: float | None = None
    p_wilcoxon: float | None = None
    p_holm: float | None = None
    p_welch: float | None = None
    p_improve: float | None = None
    p_improve_low: float | None = None
    p_improve_high: float | None = None
    cohen_d: float | None = None
    win_share: float | None = None
    tie_share: float | None = None
    paired_test: str | None = None
    seeds_needed: int | None = None

    @classmethod
    def of(cls, own: list[float], reference: list[float], maximize: bool,
           metric: str | None = None) -> Versus:
        """``own`` against ``reference`` (before Holm's adjustment, `holm_family`): paired on
        the seeds both have (a configuration stopped by racing has the first seeds only), so
        that Δ, its CI and p describe the same pairs; Welch on all of them. A new statistic
        of a configuration against the baseline is a field above, computed here, and a
        column in search.format.COLUMNS: results (table, JSON, CSV), the API, compare's
        rows and the report read it from there."""
        paired = compare_paired(own, reference, maximize=maximize)
        welch = compare(own, reference, maximize=maximize)
        low, high = clip((paired.diff_ci_low, paired.diff_ci_high),
                         bounds_of(metric, difference=True))
        return cls(paired.diff, low, high, paired.p_paired, paired.p_wilcoxon, None,
                   welch.p_value, paired.p_improve, paired.p_improve_low,
                   paired.p_improve_high, welch.cohen_d, welch.win_share, welch.tie_share,
                   paired.test)


def holm_family(compared: dict[str, Versus], values: dict[str, list[float]],
                reference: list[float] | None) -> dict[str, Versus]:
    """``p_holm`` over the family's ``p_paired``, and ``seeds_needed`` for each comparison
    that is not significant after it: planned at alpha / m, the level the first step of
    Holm's procedure asks of m comparisons."""
    keys = list(compared)
    adjusted = holm([compared[k].p_paired for k in keys])
    tested = sum(p is not None for p in adjusted)
    out = {}
    for key, p_holm in zip(keys, adjusted):
        needed = None
        own = values.get(key)
        if (p_holm is not None and p_holm >= SIGNIFICANCE and own is not None
                and reference is not None):
            n = min(len(own), len(reference))
            needed = seeds_needed(np.subtract(own[:n], reference[:n]), SIGNIFICANCE / tested)
        out[key] = dataclasses.replace(compared[key], p_holm=p_holm, seeds_needed=needed)
    return out
