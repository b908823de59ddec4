"""Aggregation over repeats and comparisons with the baseline. Pure functions, scipy inside.

Nothing here imports TensorFlow or Optuna, so every statistic is tested on
known numbers alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
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


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, sample sd (ddof=1), sem and the t-based confidence interval of the mean."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        raise ValueError("`len(values) >= 1` must hold, but got 0 values.")
    mean = float(np.mean(x))
    if n == 1:
        return Summary(n, mean, None, None, None, None)
    sd = float(np.std(x, ddof=1))
    sem = float(sps.sem(x))
    if sem == 0.0:
        # Every repeat agrees: the interval is the point (scipy would give NaN here).
        return Summary(n, mean, 0.0, 0.0, mean, mean)
    low, high = sps.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    return Summary(n, mean, sd, sem, _finite_or_none(low), _finite_or_none(high))
