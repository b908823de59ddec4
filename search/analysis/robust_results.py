"""Result rows under test-time noise ([robustness]): per test σ and for the robust score, the
same seed statistics and the same paired comparison with the baseline as the clean metric.

Each measured row of a study with [robustness] gains

- ``robustness``: per test σ, in grid order, {"test_std", "mean", "sd", "ci_low", "ci_high",
  "n", "diff", "p_holm"}: the metric under noise over the seeds, its paired difference from
  the baseline at the same σ, and the paired t-test's p Holm-adjusted over the study's
  configurations at that σ;
- ``robust_mean`` (the robust score, search.analysis.robustness.robust_scores, over the
  seeds), ``robust_sd``, ``robust_ci_low`` / ``robust_ci_high``, and ``robust_`` + every key of
  results.STAT_KEYS (``robust_diff``, ``robust_p_paired``, ``robust_p_holm``, ...): the robust
  score compared with the baseline's exactly as the clean mean is;
- ``ce`` and ``relative_ce``: the corruption errors of Hendrycks & Dietterich on the mean
  profiles against the baseline's (search.analysis.robustness.corruption_errors): the CE
  Σ_{σ>0} E_σ / Σ_{σ>0} E^base_σ and the relative CE Σ_{σ>0} (E_σ − E_0) / Σ_{σ>0}
  (E^base_σ − E^base_0), E_0 at test σ = 0 (else the clean test mean); None where undefined
  or without a baseline;
- ``certified`` when the study certifies: per radius the same entries as ``robustness``.

Rows of a study with objective "both" get ``pareto``: no other measured configuration is
at least as good on both the clean mean and the robust score and better on one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from search.analysis import robustness, stats
from search.analysis.paired import add_holm, compare_paired
from search.study.record import TrialRecord

ROBUST_PREFIX = "robust_"


def _per_point(points: Sequence[float], own: Sequence[Sequence[float]],
               reference: Sequence[Sequence[float]] | None, maximize: bool,
               name: str) -> list[dict[str, Any]]:
    """Per grid point (σ or radius): summary of the seeds, paired diff and p vs reference."""
    out = []
    for i, point in enumerate(points):
        values = list(own[i])
        s = stats.summarize(values)
        entry = {name: point, "mean": s.mean, "sd": s.sd, "ci_low": s.ci_low,
                 "ci_high": s.ci_high, "n": s.n, "diff": None, "p_paired": None}
        if reference is not None:
            c = compare_paired(values, list(reference[i]), maximize=maximize)
            entry["diff"], entry["p_paired"] = c.diff, c.p_paired
        out.append(entry)
    return out


def _holm_per_point(rows: list[dict[str, Any]], key: str) -> None:
    """Holm over the configurations at each grid point; p_paired is then dropped."""
    listed = [row[key] for row in rows if row.get(key)]
    for i in range(max((len(entries) for entries in listed), default=0)):
        adjusted = stats.holm([entries[i]["p_paired"] for entries in listed])
        for entries, p in zip(listed, adjusted):
            entries[i]["p_holm"] = p
    for entries in listed:
        for entry in entries:
            entry.pop("p_paired", None)


def _certified(record: TrialRecord) -> tuple[list[float], list[list[float]]] | None:
    c = record.certified
    if not c:
        return None
    return [float(r) for r in c["radii"]], [[float(v) for v in col] for col in c["values"]]


def add_robustness(rows: list[dict[str, Any]], records: dict[str, TrialRecord],
                   baseline_key: str | None, maximize: bool, metric: str,
                   against: Callable[[list[float], list[float], bool], dict[str, Any]],
                   stat_keys: Sequence[str]) -> dict[str, list[float]]:
    """Add the robustness keys to ``rows`` (in place); returns the robust scores per repeat of
    each measured configuration (for `compare` and the recommendation)."""
    base = records.get(baseline_key) if baseline_key else None
    base_profile = base.profile_values if base is not None else None
    base_cert = _certified(base) if base is not None else None
    scores: dict[str, list[float]] = {}
    for row in rows:
        rec = records.get(row["config"])
        profile = rec.profile_values if rec is not None else None
        if rec is None or profile is None or not rec.robust_values:
            continue
        stds, own = profile
        ref = base_profile[1] if base_profile is not None and row["config"] != baseline_key \
            else None
        row["robustness"] = _per_point(stds, own, ref, maximize, "test_std")
        scores[row["config"]] = list(rec.robust_values)
        _add_score(row, rec, scores, base, against, stat_keys, maximize)
        row.update(_corruption_errors(metric, stds, rec, base)._asdict())
        cert = _certified(rec)
        if cert is not None:
            cref = base_cert[1] if base_cert is not None and row["config"] != baseline_key \
                else None
            row["certified"] = _per_point(cert[0], cert[1], cref, maximize, "radius")
    _holm_per_point(rows, "robustness")
    _holm_per_point(rows, "certified")
    reference = scores.get(baseline_key) if baseline_key else None
    add_holm(rows, scores, reference, ROBUST_PREFIX)
    return scores


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


def _add_score(row: dict[str, Any], rec: TrialRecord, scores: dict[str, list[float]],
               base: TrialRecord | None, against: Callable[..., dict[str, Any]],
               stat_keys: Sequence[str], maximize: bool) -> None:
    """The robust score's summary and its comparison with the baseline's, prefixed."""
    s = rec.robust
    row.update({"robust_mean": s.mean if s else None, "robust_sd": s.sd if s else None,
                "robust_ci_low": s.ci_low if s else None,
                "robust_ci_high": s.ci_high if s else None, "robust_diff": None})
    row.update({ROBUST_PREFIX + k: None for k in stat_keys})
    if base is None or base is rec or not base.robust_values or s is None:
        return
    own, ref = scores[row["config"]], [float(v) for v in base.robust_values]
    row["robust_diff"] = s.mean - (base.robust.mean if base.robust else float(np.mean(ref)))
    row.update({ROBUST_PREFIX + k: v for k, v in against(own, ref, maximize).items()})


def mark_pareto(rows: list[dict[str, Any]], maximize: bool) -> None:
    """``pareto`` on every row with both means: not dominated on (clean mean, robust score)."""
    sign = 1.0 if maximize else -1.0
    points = [(row, sign * row["mean"], sign * row["robust_mean"]) for row in rows
              if row.get("mean") is not None and row.get("robust_mean") is not None]
    for row, a, b in points:
        row["pareto"] = not any(x >= a and y >= b and (x > a or y > b) for _, x, y in points)
