"""Results under test-time noise ([robustness]): per test σ and for the robust score, the
same seed statistics and the same paired comparison with the baseline as the clean metric.

A measured configuration of a study with [robustness] gets a `RobustResult`:

- ``profile``: per test σ, in grid order, a `PointResult` (JSON ``robustness``: {"test_std",
  "mean", "sd", "ci_low", "ci_high", "n", "diff", "p_holm"}): the metric under noise over the
  seeds, its paired difference from the baseline at the same σ, and the paired test's p
  Holm-adjusted over the study's configurations at that σ;
- the robust score (search.analysis.robustness.robust_scores) over the seeds (``robust_mean``,
  ``robust_sd``, ``robust_ci_low`` / ``robust_ci_high``) and ``versus``, its comparison with
  the baseline's exactly as the clean mean's (JSON ``robust_`` + every key of
  results.Versus: ``robust_diff``, ``robust_p_paired``, ``robust_p_holm``, ...);
- ``ce`` and ``relative_ce``: the corruption errors of Hendrycks & Dietterich on the mean
  profiles against the baseline's (search.analysis.robustness.corruption_errors): the CE
  Σ_{σ>0} E_σ / Σ_{σ>0} E^base_σ and the relative CE Σ_{σ>0} (E_σ − E_0) / Σ_{σ>0}
  (E^base_σ − E^base_0), E_0 at test σ = 0 (else the clean test mean); None where undefined
  or without a baseline;
- ``certified`` when the study certifies: per radius the same entries as ``profile``.

A study with objective "both" marks the ``pareto`` front: no other measured configuration is
at least as good on both the clean mean and the robust score and better on one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.analysis import robustness, stats
from search.analysis.paired import Versus, compare_paired, holm_family

if TYPE_CHECKING:
    from search.study.record import TrialRecord

ROBUST_PREFIX = "robust_"


@dataclass(frozen=True)
class PointResult:
    """The metric at one test σ (or certified radius) over the seeds, against the baseline."""

    point: float
    mean: float
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    diff: float | None = None
    p_paired: float | None = None  # unadjusted; p_holm is what is shown
    p_holm: float | None = None

    def as_dict(self, name: str) -> dict[str, Any]:
        return {name: self.point, "mean": self.mean, "sd": self.sd, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "n": self.n, "diff": self.diff, "p_holm": self.p_holm}


@dataclass(frozen=True)
class RobustResult:
    """A configuration under test-time noise (see the module's docstring)."""

    profile: tuple[PointResult, ...]
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    versus: Versus | None  # None for the baseline itself, or without one
    ce: float | None
    relative_ce: float | None
    certified: tuple[PointResult, ...] | None
    values: tuple[float, ...]  # the robust score per repeat

    def as_dict(self) -> dict[str, Any]:
        """The JSON keys, in the order results have always had them."""
        out: dict[str, Any] = {
            "robustness": [p.as_dict("test_std") for p in self.profile],
            "robust_mean": self.mean, "robust_sd": self.sd, "robust_ci_low": self.ci_low,
            "robust_ci_high": self.ci_high,
            **{ROBUST_PREFIX + k: v
               for k, v in dataclasses.asdict(self.versus or Versus()).items()},
            "ce": self.ce, "relative_ce": self.relative_ce}
        if self.certified is not None:
            out["certified"] = [p.as_dict("radius") for p in self.certified]
        return out


def _points(points: Sequence[float], own: Sequence[Sequence[float]],
            reference: Sequence[Sequence[float]] | None, maximize: bool,
            bounds: tuple[float, float]) -> tuple[PointResult, ...]:
    """Per grid point (σ or radius): summary of the seeds, paired diff and p vs reference."""
    out = []
    for i, point in enumerate(points):
        values = list(own[i])
        s = stats.summarize(values, bounds=bounds)
        diff = p = None
        if reference is not None:
            c = compare_paired(values, list(reference[i]), maximize=maximize)
            diff, p = c.diff, c.p_paired
        out.append(PointResult(point, s.mean, s.sd, s.ci_low, s.ci_high, s.n, diff, p))
    return tuple(out)


def _holm_per_point(results: dict[str, RobustResult], which: str) -> dict[str, RobustResult]:
    """Holm over the configurations at each grid point of ``which`` (profile | certified)."""
    listed = {key: getattr(r, which) for key, r in results.items() if getattr(r, which)}
    width = max((len(points) for points in listed.values()), default=0)
    adjusted: dict[str, list[PointResult]] = {key: list(points) for key, points in listed.items()}
    for i in range(width):
        keys = [key for key, points in listed.items() if i < len(points)]
        for key, p in zip(keys, stats.holm([listed[key][i].p_paired for key in keys])):
            adjusted[key][i] = dataclasses.replace(listed[key][i], p_holm=p)
    out = {}
    for key, r in results.items():
        points = tuple(adjusted[key]) if key in adjusted else None
        if points is None:
            out[key] = r
        elif which == "profile":
            out[key] = dataclasses.replace(r, profile=points)
        else:
            out[key] = dataclasses.replace(r, certified=points)
    return out


def _certified(record: TrialRecord) -> tuple[list[float], list[list[float]]] | None:
    c = record.certified
    if not c:
        return None
    return [float(r) for r in c["radii"]], [[float(v) for v in col] for col in c["values"]]


def robust_results(records: Mapping[str, TrialRecord], baseline_key: str | None,
                   maximize: bool, metric: str) -> dict[str, RobustResult]:
    """`RobustResult` of each measured configuration in ``records`` that has a profile; the
    robust score is compared with the baseline's exactly as the clean mean is (`Versus.of`,
    Holm over the family with `holm_family`)."""
    base = records.get(baseline_key) if baseline_key else None
    base_profile = base.profile_values if base is not None else None
    base_cert = _certified(base) if base is not None else None
    bounds = stats.bounds_of(metric)
    out: dict[str, RobustResult] = {}
    for key, rec in records.items():
        profile = rec.profile_values
        if profile is None or not rec.robust_values:
            continue
        stds, own = profile
        mine = key != baseline_key
        ref = base_profile[1] if base_profile is not None and mine else None
        cert = _certified(rec)
        cref = base_cert[1] if base_cert is not None and mine else None
        scores = [float(v) for v in rec.robust_values]
        s = rec.robust
        low, high = stats.clip((s.ci_low, s.ci_high) if s else (None, None), bounds)
        compared = (Versus.of(scores, [float(v) for v in base.robust_values], maximize,
                              metric)
                    if base is not None and mine and base.robust_values and s is not None
                    else None)
        out[key] = RobustResult(
            _points(stds, own, ref, maximize, bounds), s.mean if s else None,
            s.sd if s else None, low, high, compared, *_corruption_errors(metric, stds, rec, base),
            _points(cert[0], cert[1], cref, maximize, bounds) if cert is not None else None,
            tuple(scores))
    out = _holm_per_point(_holm_per_point(out, "profile"), "certified")
    reference = list(out[baseline_key].values) if baseline_key in out else None
    adjusted = holm_family({k: r.versus for k, r in out.items() if r.versus is not None},
                           {k: list(r.values) for k, r in out.items()}, reference)
    return {k: dataclasses.replace(r, versus=adjusted.get(k, r.versus)) for k, r in out.items()}


def _corruption_errors(metric: str, stds: Sequence[float], rec: TrialRecord,
                       base: TrialRecord | None) -> robustness.CorruptionErrors:
    """``ce`` and ``relative_ce`` of one configuration's mean profile against the baseline's:
    the stored mean per σ, the numbers the SQL view reads."""
    if base is None or not base.profile or not rec.profile:
        return robustness.CorruptionErrors(None, None)
    return robustness.corruption_errors(
        metric, stds, [float(e["mean"]) for e in rec.profile],
        [float(e["mean"]) for e in base.profile],
        rec.test.mean if rec.test else None, base.test.mean if base.test else None)


def pareto_front(points: Mapping[str, tuple[float | None, float | None]],
                 maximize: bool) -> dict[str, bool]:
    """Which of the configurations with both (clean mean, robust score) are not dominated."""
    sign = 1.0 if maximize else -1.0
    both = {k: (sign * a, sign * b) for k, (a, b) in points.items()
            if a is not None and b is not None}
    return {k: not any(x >= a and y >= b and (x > a or y > b) for x, y in both.values())
            for k, (a, b) in both.items()}
