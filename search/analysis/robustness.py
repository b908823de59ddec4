"""Robustness profiles: how a trained model's clean metric holds up under test-time noise.

A profile is the metric of one repeat's final model at each test-time σ of
``[robustness] input_std`` (mean over the noise draws). From it, per repeat:

- the robust score: the area under the profile divided by the width of the σ grid
  (trapezoid rule), i.e. the profile's mean level over the grid; with one σ it is the
  metric at that σ. Seed statistics and the comparison with the baseline then treat it
  like the clean metric.

and, on the mean profiles (over the seeds), the corruption errors of Hendrycks & Dietterich
(2019), normalised by our own baseline (training without noise) instead of AlexNet, with
E_σ the error at test σ (accuracy → 1 − accuracy, r2 → 1 − r2, rmse and mse as they are):

- the CE, Σ_{σ>0} E_σ / Σ_{σ>0} E^base_σ: errors under noise, below 1 is fewer than the
  baseline's. It counts clean error too: a configuration that only improves clean error
  has a CE below 1 however fast it degrades.
- the relative CE, Σ_{σ>0} (E_σ − E_0) / Σ_{σ>0} (E^base_σ − E^base_0): how much the noise
  adds to each model's own clean error E_0, against how much it adds to the baseline's;
  above 1 the configuration loses more than the baseline does (degrades faster), below 1
  less, below 0 it gains under noise.

E_0 is the error at test σ = 0 when the grid has that point; else the clean test metric,
the same models on the same test inputs without noise: the σ = 0 point. Both
ratios are None, never NaN or inf, when undefined: without a σ > 0 point, or when the
denominator is not positive. For the relative CE that means the baseline does not degrade
under this noise (its errors at σ > 0 are on the whole no larger than its clean error, up to
float rounding): a ratio of degradations has nothing to compare with, and a negative one
would turn its reading upside down. The CE's denominator is 0 only for a baseline without
errors at every σ > 0.

Certified robustness follows Cohen, Rosenfeld & Kolter (2019), CERTIFY: the class most
often predicted under n0 noisy copies is the guess; n more copies count how often it
wins; its probability's one-sided Clopper–Pearson lower bound p̲A at level 1 − alpha
certifies the radius σ·Φ⁻¹(p̲A) when p̲A > 1/2, and the point is abstained from otherwise.

Pure functions, scipy inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from search import metrics

# A relative CE's denominator (the baseline's summed degradation) at most this share of the
# errors it is computed from is taken as 0: the float rounding of a baseline that does not
# degrade must not become a ratio of rounding errors.
DEGRADATION_TOLERANCE = 1e-9


class CorruptionErrors(NamedTuple):
    """A configuration's corruption errors against the baseline's; None where undefined."""

    ce: float | None
    relative_ce: float | None


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
    """The metric as an error (lower is better) for the corruption errors: offset + sign ·
    value, its form in search.metrics (the SQL view, search/views.py, computes the same)."""
    offset, sign = metrics.METRICS[metric].error_form
    return offset + sign * np.asarray(values, dtype=np.float64)


def _split(metric: str, test_stds: np.ndarray, profile: ArrayLike,
           clean: float | None) -> tuple[np.ndarray, float | None]:
    """(E_σ for σ > 0, E_0): E_0 from the σ = 0 point if the grid has one, else ``clean``."""
    e = errors(metric, profile)
    if e.shape != test_stds.shape:
        raise ValueError(f"a profile needs one value per test σ ({test_stds.size}); "
                         f"got {e.size}")
    at_zero = e[test_stds == 0.0]
    e0 = float(at_zero[0]) if at_zero.size else (
        None if clean is None else float(errors(metric, clean)))
    return e[test_stds > 0.0], e0


def corruption_errors(metric: str, test_stds: Sequence[float], profile: ArrayLike,
                      baseline_profile: ArrayLike, clean: float | None = None,
                      baseline_clean: float | None = None) -> CorruptionErrors:
    """CE and relative CE of a mean profile against the baseline's (module docstring).

    ``profile`` and ``baseline_profile`` are the mean metric at each of ``test_stds``;
    ``clean`` and ``baseline_clean`` the clean test metrics, E_0 when the grid has no σ = 0.
    """
    stds = np.asarray(test_stds, dtype=np.float64)
    own, e0 = _split(metric, stds, profile, clean)
    base, b0 = _split(metric, stds, baseline_profile, baseline_clean)
    if own.size == 0:
        return CorruptionErrors(None, None)
    ce = _ratio(float(own.sum()), float(base.sum()), 0.0)
    if e0 is None or b0 is None:
        return CorruptionErrors(ce, None)
    scale = float(np.abs(base).sum()) + base.size * abs(b0)
    return CorruptionErrors(ce, _ratio(float((own - e0).sum()), float((base - b0).sum()),
                                       DEGRADATION_TOLERANCE * scale))


def _ratio(numerator: float, denominator: float, at_least: float) -> float | None:
    """numerator / denominator, or None unless the denominator exceeds ``at_least`` (and is
    finite, as the ratio must be: a diverged profile has no corruption error)."""
    if not (math.isfinite(denominator) and denominator > at_least):
        return None
    value = numerator / denominator
    return value if math.isfinite(value) else None


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 − alpha) Clopper–Pearson lower confidence bound of a binomial p."""
    if successes <= 0:
        return 0.0
    return float(sps.beta.ppf(alpha, successes, trials - successes + 1))


# n0 of CERTIFY: the draws that choose the class, before the certify_n that bound its p.
SELECTION_DRAWS = 100


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
