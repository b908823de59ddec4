"""Robustness profiles: how a trained model's clean metric holds up under test-time noise.

A profile is the metric of one repeat's final model at each test-time σ of
``[robustness] input_std`` (mean over the noise draws). From it, per repeat:

- the robust score: the area under the profile divided by the width of the σ grid
  (trapezoid rule), i.e. the profile's mean level over the grid; with one σ it is the
  metric at that σ. Seed statistics and the comparison with the baseline then treat it
  like the clean metric.
- the relative corruption error of Hendrycks & Dietterich (2019), normalised by our own
  baseline instead of AlexNet: Σ_s error_config(s) / Σ_s error_baseline(s), on the mean
  profiles; below 1 means fewer errors than training without noise.

Certified robustness follows Cohen, Rosenfeld & Kolter (2019), CERTIFY: the class most
often predicted under n0 noisy copies is the guess; n more copies count how often it
wins; its probability's one-sided Clopper–Pearson lower bound p̲A at level 1 − alpha
certifies the radius σ·Φ⁻¹(p̲A) when p̲A > 1/2, and the point is abstained from otherwise.

Pure functions, scipy inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

# How a metric turns into an error for the relative corruption error.
_ERROR_OF = {"accuracy": lambda v: 1.0 - v, "r2": lambda v: 1.0 - v,
             "rmse": lambda v: v, "mse": lambda v: v}


def robust_scores(test_stds: Sequence[float], profiles: ArrayLike) -> np.ndarray:
    """Per repeat: area under its profile over the σ grid / the grid's width.

    ``profiles`` is (repeats, len(test_stds)), columns in grid order (ascending σ).
    """
    x = np.asarray(test_stds, dtype=np.float64)
    y = np.atleast_2d(np.asarray(profiles, dtype=np.float64))
    if y.shape[1] != x.size:
        raise ValueError(f"profiles need one column per test σ ({x.size}); got {y.shape[1]}")
    width = float(x.max() - x.min()) if x.size else 0.0
    if width == 0.0:
        return y.mean(axis=1)
    return np.asarray(np.trapezoid(y, x, axis=1) / width)


def errors(metric: str, values: ArrayLike) -> np.ndarray:
    """The metric as an error (lower is better) for the corruption-error ratio."""
    return np.asarray(_ERROR_OF[metric](np.asarray(values, dtype=np.float64)))


def relative_corruption_error(metric: str, config_profile: ArrayLike,
                              baseline_profile: ArrayLike) -> float | None:
    """Σ_s error_config(s) / Σ_s error_baseline(s) on the mean profiles; None if 0/0."""
    total = float(errors(metric, baseline_profile).sum())
    if total == 0.0:
        return None
    return float(errors(metric, config_profile).sum()) / total


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 − alpha) Clopper–Pearson lower confidence bound of a binomial p."""
    if successes <= 0:
        return 0.0
    return float(sps.beta.ppf(alpha, successes, trials - successes + 1))


def certify(selection_counts: ArrayLike, estimation_counts: ArrayLike, sigma: float,
            alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """CERTIFY for a batch of points: (predicted class or -1 to abstain, certified radius).

    ``selection_counts`` and ``estimation_counts`` are (points, classes): how often each class
    was predicted under the n0 selection draws and the n estimation draws. Radius 0 where
    abstained.
    """
    sel = np.asarray(selection_counts)
    est = np.asarray(estimation_counts)
    guess = np.argmax(sel, axis=1)
    n = int(est[0].sum()) if est.size else 0
    wins = est[np.arange(est.shape[0]), guess]
    lower = np.array([clopper_pearson_lower(int(k), n, alpha) for k in wins])
    certified = lower > 0.5
    radius = np.where(certified, sigma * sps.norm.ppf(np.clip(lower, 0.5, 1.0)), 0.0)
    return np.where(certified, guess, -1), radius


def certified_accuracy(predicted: ArrayLike, radius: ArrayLike, labels: ArrayLike,
                       radii: Sequence[float]) -> list[float]:
    """Share of points predicted correctly with a certified radius of at least r, per r."""
    p, rad, y = (np.asarray(a) for a in (predicted, radius, labels))
    correct = p == y
    return [float(np.mean(correct & (rad >= r))) for r in radii]
