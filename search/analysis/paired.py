"""Comparisons paired by seed: repeat r of every configuration starts from the same initial
weights and sees the same data order (common random numbers), so two configurations are
compared on the per-seed differences a_r − b_r, which cancel what the seed does to both.

Pure functions, scipy inside; nothing here imports TensorFlow or Optuna.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from search.analysis.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``b`` over the seeds both have; None marks what is undefined.

    ``diff`` is mean(a_r − b_r) (= mean(a) − mean(b) on the shared seeds), whatever the
    direction; its CI and ``p_paired`` are the paired t-test's, ``p_wilcoxon`` is the
    Wilcoxon signed-rank test's (zero differences dropped, as Wilcoxon proposed).
    ``p_improve`` is the probability of improvement P(A better than B) over seeds
    (Bouthillier et al. 2021): the share of seeds on which ``a`` is better in the study's
    direction, a tie counting one half; its CI is a seeded percentile bootstrap over seeds.
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

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def paired_t(d: np.ndarray, confidence: float) -> tuple[float | None, float | None,
                                                         float | None]:
    """(CI low, CI high, two-sided p) of the paired t-test on the differences ``d``."""
    if d.size < 2:
        return None, None, None
    if np.ptp(d) == 0.0:
        # Every seed moved by the same amount: the difference is exact. scipy would say NaN
        # (0/0) for a zero difference and p = 0 otherwise; say "no test" for the first.
        same = float(d[0])
        return same, same, (None if same == 0.0 else 0.0)
    test = sps.ttest_1samp(d, 0.0)
    ci = test.confidence_interval(confidence_level=confidence)
    return (_finite_or_none(float(ci.low)), _finite_or_none(float(ci.high)),
            _finite_or_none(float(test.pvalue)))


def paired_t_p(d: np.ndarray) -> float | None:
    """Two-sided p of the paired t-test alone: the race asks it often, without a CI."""
    if d.size < 2:
        return None
    sd = float(np.std(d, ddof=1))
    mean = float(np.mean(d))
    if sd == 0.0:
        return None if mean == 0.0 else 0.0  # as `paired_t`: an exact difference
    t = mean / (sd / math.sqrt(d.size))
    return float(2.0 * sps.t.sf(abs(t), d.size - 1))


def wilcoxon_p(d: np.ndarray) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test; None when every difference is zero.

    With fewer than 6 non-zero differences no outcome reaches p < 0.05 (the smallest
    two-sided exact p for n = 5 is 2/32), which is why racing starts the t-test by default.
    """
    if not np.any(d != 0.0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sample size too small" for n < 10
        result = sps.wilcoxon(d, zero_method="wilcox")
    return _finite_or_none(float(result.pvalue))


def improvement_share(a: np.ndarray, b: np.ndarray, maximize: bool) -> np.ndarray:
    """Per seed: 1 where ``a`` is better than ``b`` in the study's direction, ½ on a tie."""
    better = a > b if maximize else a < b
    return better.astype(np.float64) + 0.5 * (a == b)


def probability_of_improvement(a: np.ndarray, b: np.ndarray, maximize: bool,
                               confidence: float = CONFIDENCE,
                               n_resamples: int = BOOTSTRAP_RESAMPLES,
                               seed: int = BOOTSTRAP_SEED,
                               ) -> tuple[float, float | None, float | None]:
    """P(A better than B) over seeds and its seeded percentile-bootstrap CI."""
    share = improvement_share(a, b, maximize)
    point = float(share.mean())
    if share.size < 2:
        return point, None, None
    if np.ptp(share) == 0.0:
        return point, point, point  # every resample gives the same share
    result = sps.bootstrap((share,), np.mean, confidence_level=confidence,
                           n_resamples=n_resamples, method="percentile",
                           rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return point, _finite_or_none(float(low)), _finite_or_none(float(high))


def compare_paired(values: ArrayLike, reference: ArrayLike, maximize: bool = True,
                   confidence: float = CONFIDENCE) -> PairedComparison:
    """Compare ``values`` with ``reference`` seed by seed (repeat r with repeat r).

    Only the seeds both have are paired (the first min(len) repeats: a configuration
    stopped early by racing has a prefix of the seeds of one that ran to the end).
    """
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    n = min(a.size, b.size)
    if n == 0:
        raise ValueError(f"both samples need a value; got {a.size} and {b.size}")
    a, b = a[:n], b[:n]
    d = a - b
    low, high, p = paired_t(d, confidence)
    p_improve, improve_low, improve_high = probability_of_improvement(a, b, maximize,
                                                                      confidence)
    return PairedComparison(n, float(d.mean()), low, high, p, wilcoxon_p(d), p_improve,
                            improve_low, improve_high)
