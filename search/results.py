"""Stored trials -> one result row per configuration, the shape every output starts from.

The CLI's table / CSV / JSON, the SQL view's tests and the report all read
these rows, so the numbers a person sees are the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import stats
from search.errors import NoiseSearchError
from search.noise import BASELINE, parse_config_key
from search.study import CONFIG_ATTR, SPEC_ATTR

_STATE_ORDER = {"COMPLETE": 0, "RUNNING": 1, "WAITING": 2, "FAIL": 3, "PRUNED": 4}


def load_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study by name; an unknown name lists the studies that exist."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        listed = ", ".join(names) if names else "none yet; start one with `noise-search run`"
        raise NoiseSearchError(f"no study named {name!r} in this storage; studies: {listed}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyResults:
    name: str
    metric: str
    direction: str  # maximize | minimize
    rows: list[dict[str, Any]]
    grid_size: int
    # Per-repeat test values of each completed configuration, kept out of the rows (and so out
    # of the JSON) because they are long; `compare` and the recommendation read them.
    values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def baseline(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["placement"] == BASELINE
                     and r["state"] == "COMPLETE"), None)

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["state"] == "COMPLETE"]


def _row(trial: FrozenTrial) -> dict[str, Any]:
    a = trial.user_attrs
    # A queued trial carries only its key; placement and σ are set when a worker takes it.
    config = parse_config_key(a[CONFIG_ATTR], a.get("kind", "additive"))
    row = {
        "config": a[CONFIG_ATTR],
        "placement": a.get("placement", config.placement),
        "std": a.get("std", config.std_value()),
        "kind": a.get("kind", "additive"),
        "state": trial.state.name,
        "trial": trial.number,
        "n": a.get("repeats"),
        "mean": a.get("test_mean"),
        "sd": a.get("test_sd"),
        "sem": a.get("test_sem"),
        "ci_low": a.get("test_ci_low"),
        "ci_high": a.get("test_ci_high"),
        "train_mean": a.get("train_mean"),
        "duration_s": a.get("duration_s"),
        "failure": a.get("failure"),
    }
    # Rows go out as strict JSON: a non-finite number written by other code becomes null.
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()}


def _all_finite(values: Any) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _representative(trials: list[FrozenTrial]) -> FrozenTrial:
    """Of several trials of one configuration (retries), the one that says most."""
    return min(trials, key=lambda t: (_STATE_ORDER.get(t.state.name, 9), -t.number))


def collect(study: optuna.Study) -> StudyResults:
    """One row per configuration, best first; configurations not yet complete at the end."""
    metric = study.user_attrs.get("metric", "value")
    if SPEC_ATTR not in study.user_attrs:
        raise NoiseSearchError(f"study {study.study_name!r} was not created by noise-search")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    by_config: dict[str, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get(CONFIG_ATTR)
        if key is not None:
            by_config.setdefault(key, []).append(trial)
    representatives = [_representative(trials) for trials in by_config.values()]
    rows = [_row(trial) for trial in representatives]
    values = {row["config"]: [float(v) for v in trial.user_attrs["test_values"]]
              for row, trial in zip(rows, representatives)
              if row["state"] == "COMPLETE" and _all_finite(trial.user_attrs.get("test_values"))}
    baseline = next((r for r in rows if r["config"] == BASELINE and r["state"] == "COMPLETE"),
                    None)
    for row in rows:
        row["metric"] = metric
        if (row["state"] == "COMPLETE" and baseline is not None and row["mean"] is not None
                and baseline["mean"] is not None):
            row["diff"] = row["mean"] - baseline["mean"]
        else:
            row["diff"] = None
    _add_statistics(rows, values, baseline, maximize)
    sign = -1.0 if maximize else 1.0
    rows.sort(key=lambda r: (r["state"] != "COMPLETE",
                             sign * r["mean"] if r["mean"] is not None else 0.0, r["config"]))
    grid = study.user_attrs.get("grid") or []
    return StudyResults(study.study_name, metric, "maximize" if maximize else "minimize", rows,
                        len(grid), values)


# Keys every row gets besides the stored aggregates; None where a value is undefined.
STAT_KEYS = ("bootstrap_ci_low", "bootstrap_ci_high", "diff_ci_low", "diff_ci_high", "p_value",
             "p_holm", "cohen_d", "win_share", "tie_share")


def _add_statistics(rows: list[dict[str, Any]], values: dict[str, list[float]],
                    baseline: dict[str, Any] | None, maximize: bool) -> None:
    """Bootstrap CI of each configuration, and its comparison with the baseline.

    The family for Holm's correction is every completed configuration compared
    with the baseline: that is the set of questions `results` answers at once.
    """
    for row in rows:
        row.update(dict.fromkeys(STAT_KEYS))
        own = values.get(row["config"])
        if own is None:
            continue
        row["bootstrap_ci_low"], row["bootstrap_ci_high"] = stats.bootstrap_ci(own)
        if baseline is None or row is baseline or baseline["config"] not in values:
            continue
        c = stats.compare(own, values[baseline["config"]], maximize=maximize)
        row.update(diff_ci_low=c.diff_ci_low, diff_ci_high=c.diff_ci_high, p_value=c.p_value,
                   cohen_d=c.cohen_d, win_share=c.win_share, tie_share=c.tie_share)
    adjusted = stats.holm([row["p_value"] for row in rows])
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"] = p_holm


def _better(diff: float, maximize: bool) -> bool:
    return diff > 0 if maximize else diff < 0


@dataclass(frozen=True)
class Recommendation:
    """The answer to "which noise, if any?": the best configuration and if its gain is real."""

    best: str | None  # None: no baseline to compare with, or nothing completed
    beats_baseline: bool
    significant: bool  # the gain survives Holm's correction at stats.SIGNIFICANCE
    significant_configs: list[str]  # every configuration significantly better than baseline
    text: str


def _p(value: float | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def recommend(results: StudyResults) -> Recommendation:
    """Best configuration by mean in the study's direction, and whether it beats the baseline."""
    completed = results.completed
    baseline = results.baseline
    metric = results.metric
    if not completed:
        return Recommendation(None, False, False, [], "no configuration has completed yet")
    if baseline is None:
        return Recommendation(None, False, False, [],
                              "no recommendation: the baseline (none) has not completed, so "
                              "nothing can be compared with training without noise")
    better = [r for r in completed if r is not baseline and r["diff"] is not None
              and _better(r["diff"], results.maximize)]
    significant = [r["config"] for r in better
                   if r["p_holm"] is not None and r["p_holm"] < stats.SIGNIFICANCE]
    pending = ""
    if results.grid_size and len(completed) < results.grid_size:
        pending = (f" ({len(completed)} of {results.grid_size} configurations complete; this "
                   "may change)")
    if not better:
        runner_up = next((r for r in completed if r is not baseline), None)
        text = (f"recommendation: no noise. No configuration beats the baseline "
                f"(mean {metric} {baseline['mean']:.4f})")
        if runner_up is not None and runner_up["mean"] is not None:
            text += f"; the best with noise, {runner_up['config']}, has {runner_up['mean']:.4f}"
        return Recommendation(BASELINE, False, False, [], text + pending)
    best = better[0]  # rows are sorted best first
    n_tests = sum(r["p_holm"] is not None for r in results.rows)
    gain = (f"{best['config']}: mean {metric} {best['mean']:.4f} vs {baseline['mean']:.4f} "
            f"without noise (Δ {best['diff']:+.4f}")
    if best["diff_ci_low"] is not None:
        gain += f", 95% CI {best['diff_ci_low']:+.4f} to {best['diff_ci_high']:+.4f}"
    gain += ")"
    if best["win_share"] is not None:
        gain += f", better on {round(best['win_share'] * (best['n'] or 0))} of {best['n']} seeds"
    holm_p = (f"Holm-adjusted p = {_p(best['p_holm'])} over {n_tests} comparisons "
              f"(Welch p = {_p(best['p_value'])})")
    if best["config"] in significant:
        text = (f"recommendation: {gain}. The gain is significant after correction: "
                f"{holm_p} < {stats.SIGNIFICANCE:g}; {len(significant)} of {n_tests} "
                "configurations are significantly better than the baseline")
        return Recommendation(best["config"], True, True, significant,
                              text + _runner_up(results, best) + pending)
    if significant:  # a smaller but steadier gain elsewhere passed the test
        text = (f"best: {gain}. Its gain is NOT significant after correction ({holm_p}). "
                f"Significantly better than the baseline: {', '.join(significant)}")
    else:
        text = (f"recommendation: no noise. No configuration is significantly better than "
                f"the baseline after correction; the best, {gain}, has a gain that is NOT "
                f"significant ({holm_p}) and may be seed-to-seed variation")
    return Recommendation(best["config"], True, False, significant, text + pending)


def _runner_up(results: StudyResults, best: dict[str, Any]) -> str:
    """A warning when the second best is as good as the best, as far as the seeds can tell."""
    second = next((r for r in results.completed if r is not best
                   and r["placement"] != BASELINE and r["config"] in results.values), None)
    if second is None or best["config"] not in results.values:
        return ""
    c = stats.compare(results.values[best["config"]], results.values[second["config"]],
                      maximize=results.maximize)
    if c.p_value is not None and c.p_value < stats.SIGNIFICANCE:
        return ""
    return (f". The runner-up {second['config']} (mean {second['mean']:.4f}) is not "
            f"significantly different from it (Welch p = {_p(c.p_value)})")


@dataclass(frozen=True)
class Pair:
    """Two configurations side by side (`noise-search compare`): a − b."""

    a: dict[str, Any]
    b: dict[str, Any]
    comparison: stats.Comparison


def _find(results: StudyResults, text: str) -> dict[str, Any]:
    valid = [r["config"] for r in results.completed]
    listed = ", ".join(valid)
    try:
        key = parse_config_key(text).key  # "hidden_pre:0.10" names "hidden_pre:0.1"
    except ValueError as exc:
        raise NoiseSearchError(f"configuration {text!r}: {exc}; completed configurations of "
                               f"{results.name!r}: {listed}") from None
    row = next((r for r in results.rows if r["config"] == key), None)
    if row is None:
        raise NoiseSearchError(f"study {results.name!r} has no configuration {key!r}; "
                               f"completed configurations: {listed}")
    if row["state"] != "COMPLETE" or key not in results.values:
        raise NoiseSearchError(f"configuration {key!r} of study {results.name!r} has not "
                               f"completed (state {row['state'].lower()}); completed "
                               f"configurations: {listed}")
    return row


def compare_configs(results: StudyResults, a: str, b: str) -> Pair:
    """Compare configuration ``a`` with ``b`` (keys as `placement:σ` or `none`)."""
    require_completed(results)
    row_a, row_b = _find(results, a), _find(results, b)
    comparison = stats.compare(results.values[row_a["config"]], results.values[row_b["config"]],
                               maximize=results.maximize)
    return Pair(row_a, row_b, comparison)


def require_completed(results: StudyResults) -> None:
    if not results.completed:
        raise NoiseSearchError(
            f"study {results.name!r} has no completed trial yet; run it with `noise-search run`"
        )


def study_overview(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """Each study in the storage with its progress (for `noise-search studies`)."""
    out = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        trials = storage.get_all_trials(frozen._study_id, deepcopy=False)
        counts = {state.name: 0 for state in TrialState}
        for t in trials:
            counts[t.state.name] += 1
        grid = frozen.user_attrs.get("grid") or []
        spec = frozen.user_attrs.get(SPEC_ATTR) or {}
        total = len(grid) if spec.get("study", {}).get("sampler", "grid") == "grid" else \
            spec.get("study", {}).get("n_trials", 0)
        done = {t.user_attrs.get(CONFIG_ATTR) for t in trials if t.state == TrialState.COMPLETE}
        out.append({
            "name": frozen.study_name,
            "metric": frozen.user_attrs.get("metric", "?"),
            "complete": len(done),
            "total": total,
            "running": counts["RUNNING"],
            "waiting": counts["WAITING"],
            "failed": counts["FAIL"],
        })
    return out
