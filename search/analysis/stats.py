"""Aggregation over repeats and comparisons with the baseline. Pure functions, scipy inside.

Nothing here imports TensorFlow or Optuna, so every statistic is tested on
known numbers alone.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from search import metrics

CONFIDENCE = 0.95
# Metric values are stored with 6 decimals (study.record), so two values or differences
# closer than this are the same value: 0.714286 − 0.7 and 0.8 − 0.785714 tie.
TIE_TOLERANCE = 2e-6


def bounds_of(metric: str | None, difference: bool = False) -> tuple[float, float]:
    """The range of ``metric`` (search.metrics) or of a difference of two of its values,
    [low − high, high − low]; unknown: all. Intervals of a mean are cut to it (a t interval
    of three accuracies can reach past 1)."""
    low, high = metrics.bounds(metric)
    if difference:
        return low - high, high - low
    return low, high


def clip(interval: tuple[float | None, float | None], bounds: tuple[float, float]
         ) -> tuple[float | None, float | None]:
    """An interval cut to ``bounds``; an infinite end becomes the bound, or None if the bound
    is infinite too (no finite statement)."""
    low, high = interval
    lo, hi = bounds
    if low is not None:
        low = _finite_or_none(max(low, lo))
    if high is not None:
        high = _finite_or_none(min(high, hi))
    return low, high


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Summary:
    """Repeat statistics of one metric of one configuration; None where undefined (n = 1)."""

    n: int
    mean: float
    sd: float | None
    sem: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(values: ArrayLike, confidence: float = CONFIDENCE,
              bounds: tuple[float, float] = (-math.inf, math.inf)) -> Summary:
    """Mean, sample sd (ddof=1), sem and the t-based confidence interval of the mean, cut to
    ``bounds`` (the metric's range, `bounds_of`)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        raise ValueError("`len(values) >= 1` must hold, but got 0 values.")
    if n == 1:
        return Summary(n, float(x[0]), None, None, None, None)
    if np.ptp(x) == 0.0:
        # Every repeat agrees: the interval is the point (scipy would give NaN here).
        same = float(x[0])
        return Summary(n, same, 0.0, 0.0, same, same)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1))
    sem = float(sps.sem(x))
    low, high = clip(_t_interval(x, confidence), bounds)
    return Summary(n, mean, sd, sem, low, high)


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    low, high = sps.t.interval(confidence, df=x.size - 1, loc=float(np.mean(x)),
                               scale=float(sps.sem(x)))
    return _finite_or_none(float(low)), _finite_or_none(float(high))


# --- bootstrap ---------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 9999
# BCa from this many seeds on; below, its intervals are too narrow (coverage of a nominal
# 95% measured in benchmarks/verdict_simulation.py: 72% at n = 3, 86% at n = 5, 92% at
# n = 20) and the t interval, which holds its level there, is given instead.
BCA_MIN_N = 30
# Fixed so that `results` prints the same interval every time it is run on the same study.
BOOTSTRAP_SEED = 0


def bootstrap_ci(values: ArrayLike, confidence: float = CONFIDENCE,
                 n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 bounds: tuple[float, float] = (-math.inf, math.inf),
                 ) -> tuple[float | None, float | None]:
    """Bootstrap (BCa) confidence interval of the mean, seeded and therefore deterministic,
    from BCA_MIN_N values on; the t interval below that; cut to ``bounds``.

    With enough seeds BCa follows a skewed spread (accuracies near 1, a few seeds stuck far
    below the rest) that the t interval does not; with few, it is too narrow to trust.
    (None, None) for one value; the point itself when every value is the same.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("`len(values) >= 1` must hold, but got 0 values.")
    if x.size == 1:
        return None, None
    if np.ptp(x) == 0.0:
        # Every resample has the same mean: BCa's correction is 0/0 (scipy warns and says NaN).
        return float(x[0]), float(x[0])
    if x.size < BCA_MIN_N:
        return clip(_t_interval(x, confidence), bounds)
    result = sps.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                           method="BCa", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return clip((_finite_or_none(float(low)), _finite_or_none(float(high))), bounds)


# --- comparison of two configurations ------------------------------------------------------------

# 1 − CONFIDENCE, written out: 1.0 - 0.95 is 0.050000000000000044, under which p = 0.05 would
# count as significant.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    """A configuration's test metric against a reference one (usually the baseline).

    ``diff`` is mean(values) − mean(reference), whatever the direction; the CI
    and p-value are Welch's (no equal-variance assumption). ``wins`` / ``ties`` /
    ``losses`` count seeds, pairing repeat r with repeat r of the reference (they
    share initial weights and data order); a win is "better" in the study's
    direction, on the seeds both have. None marks what is undefined, never NaN.
    """

    n: int
    n_reference: int
    diff: float
    diff_ci_low: float | None
    diff_ci_high: float | None
    p_value: float | None
    cohen_d: float | None
    pairs: int
    wins: int
    ties: int
    losses: int

    @property
    def win_share(self) -> float | None:
        return self.wins / self.pairs if self.pairs else None

    @property
    def tie_share(self) -> float | None:
        return self.ties / self.pairs if self.pairs else None

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = asdict(self)
        out["win_share"] = self.win_share
        out["tie_share"] = self.tie_share
        return out


def cohen_d(values: ArrayLike, reference: ArrayLike) -> float | None:
    """(mean − mean_reference) / pooled sample sd; None when the pooled sd is 0 or undefined."""
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    dof = a.size + b.size - 2
    if dof < 1:
        return None
    ss = (a.size - 1) * (np.var(a, ddof=1) if a.size > 1 else 0.0) \
        + (b.size - 1) * (np.var(b, ddof=1) if b.size > 1 else 0.0)
    pooled = math.sqrt(ss / dof)
    if pooled == 0.0:
        return None  # 0/0 or ±∞: no spread to measure the difference against
    return float((a.mean() - b.mean()) / pooled)


def compare(values: ArrayLike, reference: ArrayLike, maximize: bool = True,
            confidence: float = CONFIDENCE) -> Comparison:
    """Compare ``values`` with ``reference`` (per-repeat metrics of two configurations)."""
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"both samples need a value; got {a.size} and {b.size}")
    diff = float(a.mean() - b.mean())
    low: float | None
    high: float | None
    p: float | None
    if a.size < 2 or b.size < 2:
        low = high = p = None  # no spread estimate for one of them: Welch is undefined
    elif np.ptp(a) <= TIE_TOLERANCE and np.ptp(b) <= TIE_TOLERANCE:
        # Both constant: scipy would give p = NaN for equal constants (0/0) and 0 for
        # different ones. The permutation test of the two samples is exact here: only the
        # observed split and its mirror are as extreme, p = 2 / C(na + nb, na).
        low = high = diff
        p = 1.0 if abs(diff) <= TIE_TOLERANCE else min(
            1.0, 2.0 / math.comb(a.size + b.size, a.size))
    else:
        with warnings.catch_warnings():
            if np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
                # scipy warns of "catastrophic cancellation" for a constant sample, whose
                # variance is nonetheless exactly 0; Welch then rests on the other sample.
                warnings.simplefilter("ignore", RuntimeWarning)
            test = sps.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(confidence_level=confidence)
        low, high = _finite_or_none(float(ci.low)), _finite_or_none(float(ci.high))
        p = _finite_or_none(float(test.pvalue))
    # Same-seed wins on the seeds both have: repeat r with repeat r (a configuration stopped
    # early by racing has the first seeds only).
    pairs = min(a.size, b.size)
    gap = a[:pairs] - b[:pairs]
    gap = np.where(np.abs(gap) <= TIE_TOLERANCE, 0.0, gap)
    better = gap > 0 if maximize else gap < 0
    wins, ties = int(better.sum()), int((gap == 0.0).sum())
    losses = pairs - wins - ties
    return Comparison(int(a.size), int(b.size), diff, low, high, p, cohen_d(a, b), pairs, wins,
                      ties, losses)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (Holm 1979).

    scipy only has Benjamini–Hochberg/Yekutieli (false_discovery_control), which
    controls the false discovery rate; Holm controls the family-wise error rate,
    the question "is this gain real?" asks. Sorted ascending, p_(k) becomes
    max over j <= k of min(1, (m − j + 1)·p_(j)), m the number of tests — the
    same as R's p.adjust(method = "holm"). None entries (no test was possible)
    are not part of the family and stay None.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0  # the max keeps the adjusted values in the order of the raw ones
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
