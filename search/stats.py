"""Aggregation over repeats and comparisons with the baseline. Pure functions, scipy inside.

Nothing here imports TensorFlow or Optuna, so every statistic is tested on
known numbers alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

CONFIDENCE = 0.95


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


def summarize(values: ArrayLike, confidence: float = CONFIDENCE) -> Summary:
    """Mean, sample sd (ddof=1), sem and the t-based confidence interval of the mean."""
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
    low, high = sps.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    return Summary(n, mean, sd, sem, _finite_or_none(low), _finite_or_none(high))
