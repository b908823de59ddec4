"""Stored trials -> one result row per configuration, the shape every output starts from.

The CLI's table / CSV / JSON, the SQL view's tests and the report all read
these rows, so the numbers a person sees are the same everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import optuna

from search import format as fmt
from search.analysis import stats
from search.analysis.paired import PairedComparison, add_holm, compare_paired
from search.analysis.robust_results import add_robustness, mark_pareto
from search.errors import StudyError
from search.noise import BASELINE, parse_config_key
from search.study import record
from search.study.record import Progress, StudyMeta, TrialRecord

# States whose trials carry per-seed values: run to the end, or stopped early by racing.
MEASURED = ("COMPLETE", "PRUNED")
_STATE_ORDER = {"COMPLETE": 0, "RUNNING": 1, "WAITING": 2, "FAIL": 3, "PRUNED": 4}


def load_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study by name; an unknown name lists the studies that exist."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        listed = (", ".join(fmt.name(n) for n in names) if names
                  else "none yet; start one with `noise-search run`")
        raise StudyError(f"no study named {fmt.quoted(name)} in this storage; "
                               f"studies: {listed}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyResults:
    name: str
    metric: str
    direction: str  # maximize | minimize
    rows: list[dict[str, Any]]
    progress: Progress
    # Per-repeat test values of each measured configuration (completed, or stopped by racing),
    # kept out of the rows (and so out of the JSON) because they are long; `compare` and the
    # recommendation read them.
    values: dict[str, list[float]] = field(default_factory=dict)
    # [robustness]: the study's objective (clean | robust | both) and the robust score per
    # repeat of each measured configuration (search.analysis.robust_results).
    objective: str = "clean"
    robust_values: dict[str, list[float]] = field(default_factory=dict)
    # Per-repeat train values of each measured configuration (the seed-level DataFrame).
    train_values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def has_robustness(self) -> bool:
        return bool(self.robust_values)

    @property
    def total(self) -> int:
        """Configurations the study runs (StudyMeta.total)."""
        return self.progress.total

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

    @property
    def measured(self) -> list[dict[str, Any]]:
        """Rows with values: completed, or stopped early by racing (PRUNED, fewer seeds)."""
        return [r for r in self.rows if r["state"] in MEASURED]


def _row(r: TrialRecord) -> dict[str, Any]:
    test, train = r.test, r.train
    # Cut to the metric's range here too: studies stored before the record did so.
    ci_low, ci_high = stats.clip((test.ci_low, test.ci_high) if test else (None, None),
                                 stats.bounds_of(r.metric))
    row = {
        "config": r.key,
        "placement": r.config.placement,
        "std": r.config.std_value(),
        "kind": r.config.kind,
        "state": r.state.name,
        "trial": r.number,
        "n": r.repeats,
        "mean": test.mean if test else None,
        "sd": test.sd if test else None,
        "sem": test.sem if test else None,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "train_mean": train.mean if train else None,
        "duration_s": r.duration_s,
        "failure": r.failure,
        "pruned_reason": r.pruned_reason,
    }
    # Rows go out as strict JSON: a non-finite number written by other code becomes null.
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()}


def _all_finite(values: Any) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _representative(trials: list[TrialRecord]) -> TrialRecord:
    """Of several trials of one configuration (retries), the one that says most."""
    return min(trials, key=lambda t: (_STATE_ORDER.get(t.state.name, 9), -t.number))


def _meta(study: optuna.Study) -> StudyMeta:
    meta = StudyMeta.read(study)
    if meta is None:
        raise StudyError(f"study {study.study_name!r} was not created by noise-search")
    return meta


def collect(study: optuna.Study) -> StudyResults:
    """One row per configuration, best first; configurations not yet complete at the end."""
    meta = _meta(study)
    maximize = meta.direction == "maximize"
    trials = study.get_trials(deepcopy=False)
    by_config: dict[str, list[TrialRecord]] = {}
    for r in record.records(trials):
        by_config.setdefault(r.key, []).append(r)
    representatives = [_representative(found) for found in by_config.values()]
    rows = [_row(r) for r in representatives]
    values = {row["config"]: [float(v) for v in r.test_values or ()]
              for row, r in zip(rows, representatives)
              if row["state"] in MEASURED and _all_finite(r.test_values)}
    baseline = next((r for r in rows if r["config"] == BASELINE and r["state"] == "COMPLETE"),
                    None)
    for row in rows:
        row["metric"] = meta.metric
        if (row["state"] in MEASURED and baseline is not None and row["mean"] is not None
                and baseline["mean"] is not None):
            row["diff"] = row["mean"] - baseline["mean"]
        else:
            row["diff"] = None
    # Before the rows are sorted: each row is still beside its trial.
    train_values = {row["config"]: [float(v) for v in r.train_values or ()]
                    for row, r in zip(rows, representatives) if row["config"] in values}
    _add_statistics(rows, values, baseline, maximize, meta.metric)
    objective = str(meta.spec.get("study", {}).get("objective", "clean"))
    measured = {row["config"]: r for row, r in zip(rows, representatives)
                if row["state"] in MEASURED}
    robust_values = add_robustness(rows, measured, baseline["config"] if baseline else None,
                                   maximize, meta.metric, _against,
                                   [k for k in STAT_KEYS if not k.startswith("bootstrap")])
    if objective == "both":
        mark_pareto(rows, maximize)
    sign = -1.0 if maximize else 1.0
    rank = {"COMPLETE": 0, "PRUNED": 1}  # then the rest: running, queued, failed
    ranked = "robust_mean" if objective == "robust" else "mean"  # what the study optimises
    rows.sort(key=lambda r: (rank.get(r["state"], 2),
                             sign * r[ranked] if r.get(ranked) is not None else 0.0,
                             r["config"]))
    return StudyResults(study.study_name, meta.metric, meta.direction, rows,
                        record.progress(meta, trials), values, objective, robust_values,
                        train_values)


# Keys every row gets besides the stored aggregates; None where a value is undefined. The
# comparison with the baseline is paired by seed (repeat r with repeat r: same initial weights,
# data order and noise draws) on the seeds both have: diff (row["diff"]), its CI and p_paired
# are one test's (paired_test: "sign-flip" at n <= 4 seeds, "t" above; search.analysis.paired),
# p_holm adjusts p_paired over the study's comparisons, p_welch is the unpaired Welch test kept
# for reference; seeds_needed is how many seeds the paired t-test would need to make the
# observed Δ significant after the Holm correction with 80% power (only when it is not).
STAT_KEYS = ("bootstrap_ci_low", "bootstrap_ci_high", "diff_ci_low", "diff_ci_high",
             "p_paired", "p_wilcoxon", "p_holm", "p_welch", "p_improve", "p_improve_low",
             "p_improve_high", "cohen_d", "win_share", "tie_share", "paired_test",
             "seeds_needed")


def _against(own: list[float], reference: list[float], maximize: bool,
             metric: str | None = None) -> dict[str, Any]:
    """The STAT_KEYS comparing ``own`` with ``reference``, and ``diff``: paired on the seeds
    both have (a configuration stopped by racing has the first seeds only), so that Δ, its CI
    and p describe the same pairs; Welch on all of them."""
    paired = compare_paired(own, reference, maximize=maximize)
    welch = stats.compare(own, reference, maximize=maximize)
    n = paired.n
    seeds = welch if welch.pairs else stats.compare(own[:n], reference[:n], maximize=maximize)
    low, high = stats.clip((paired.diff_ci_low, paired.diff_ci_high),
                           stats.bounds_of(metric, difference=True))
    return {"diff": paired.diff, "diff_ci_low": low, "diff_ci_high": high,
            "p_paired": paired.p_paired, "p_wilcoxon": paired.p_wilcoxon,
            "p_welch": welch.p_value, "p_improve": paired.p_improve,
            "p_improve_low": paired.p_improve_low, "p_improve_high": paired.p_improve_high,
            "cohen_d": welch.cohen_d, "win_share": seeds.win_share,
            "tie_share": seeds.tie_share, "paired_test": paired.test}


def _add_statistics(rows: list[dict[str, Any]], values: dict[str, list[float]],
                    baseline: dict[str, Any] | None, maximize: bool, metric: str) -> None:
    """Bootstrap CI of each configuration, and its comparison with the baseline.

    The family for Holm's correction is every measured configuration (completed or stopped
    by racing) compared with the baseline: the set of questions `results` answers at once.
    """
    for row in rows:
        row.update(dict.fromkeys(STAT_KEYS))
        own = values.get(row["config"])
        if own is None:
            continue
        row["bootstrap_ci_low"], row["bootstrap_ci_high"] = stats.bootstrap_ci(
            own, bounds=stats.bounds_of(metric))
        if baseline is None or row is baseline or baseline["config"] not in values:
            continue
        row.update(_against(own, values[baseline["config"]], maximize, metric))
    reference = values.get(baseline["config"]) if baseline is not None else None
    add_holm(rows, values, reference)


@dataclass(frozen=True)
class Pair:
    """Two configurations side by side (`noise-search compare`): a − b, paired by seed
    (``paired``, the one the verdict uses) and unpaired (``comparison``: Welch, Cohen's d,
    same-seed wins)."""

    a: dict[str, Any]
    b: dict[str, Any]
    comparison: stats.Comparison
    paired: PairedComparison
    robust: PairedComparison | None = None  # the robust scores, with [robustness]

    def as_dict(self) -> dict[str, Any]:
        """The comparison's numbers for JSON: the paired test's diff CI and p, then Welch's."""
        c = self.comparison
        return {**self.paired.as_dict(), "p_welch": c.p_value, "welch_ci_low": c.diff_ci_low,
                "welch_ci_high": c.diff_ci_high, "n_a": c.n, "n_b": c.n_reference,
                "cohen_d": c.cohen_d, "pairs": c.pairs, "wins": c.wins, "ties": c.ties,
                "losses": c.losses}


def _find(results: StudyResults, text: str) -> dict[str, Any]:
    valid = [r["config"] for r in results.measured]
    listed = ", ".join(valid)
    try:
        # "hidden_pre:0.10" names "hidden_pre:0.1"; a builder study's sites are any names
        key = parse_config_key(text, allowed=None).key
    except ValueError as exc:
        raise StudyError(f"configuration {text!r}: {exc}; measured configurations of "
                               f"{results.name!r}: {listed}") from None
    row = next((r for r in results.rows if r["config"] == key), None)
    if row is None:
        raise StudyError(f"study {results.name!r} has no configuration {key!r}; "
                               f"measured configurations: {listed}")
    if row["state"] not in MEASURED or key not in results.values:
        raise StudyError(f"configuration {key!r} of study {results.name!r} has not "
                               f"been measured (state {row['state'].lower()}); measured "
                               f"configurations: {listed}")
    return row


def compare_configs(results: StudyResults, a: str, b: str) -> Pair:
    """Compare configuration ``a`` with ``b`` (keys as `placement:σ` or `none`)."""
    require_completed(results)
    row_a, row_b = _find(results, a), _find(results, b)
    a_values, b_values = results.values[row_a["config"]], results.values[row_b["config"]]
    comparison = stats.compare(a_values, b_values, maximize=results.maximize)
    if not comparison.pairs:  # one was stopped early by racing: wins on the shared seeds
        n = min(len(a_values), len(b_values))
        shared = stats.compare(a_values[:n], b_values[:n], maximize=results.maximize)
        comparison = dataclasses.replace(comparison, pairs=shared.pairs, wins=shared.wins,
                                         ties=shared.ties, losses=shared.losses)
    paired = _bounded(compare_paired(a_values, b_values, maximize=results.maximize),
                      results.metric)
    ra, rb = (results.robust_values.get(row["config"]) for row in (row_a, row_b))
    robust = None if ra is None or rb is None else _bounded(
        compare_paired(ra, rb, maximize=results.maximize), results.metric)
    return Pair(row_a, row_b, comparison, paired, robust)


def _bounded(c: PairedComparison, metric: str) -> PairedComparison:
    """The comparison with its Δ CI cut to the range of a difference of the metric (an exact
    test on few seeds may exclude nothing: ±inf becomes the range, or None)."""
    low, high = stats.clip((c.diff_ci_low, c.diff_ci_high),
                           stats.bounds_of(metric, difference=True))
    return dataclasses.replace(c, diff_ci_low=low, diff_ci_high=high)


def require_completed(results: StudyResults) -> None:
    if not results.completed:
        raise StudyError(
            f"study {results.name!r} has no completed trial yet; run it with `noise-search run`"
        )


def study_overview(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """Each study in the storage with its progress (for `noise-search studies`)."""
    out = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        trials = storage.get_all_trials(storage.get_study_id_from_name(frozen.study_name),
                                        deepcopy=False)
        meta = StudyMeta.read(frozen)
        if meta is None:  # another program's study in the same storage
            meta = StudyMeta({}, (), "?", "maximize", 0)
        p = record.progress(meta, trials)
        out.append({"name": frozen.study_name, "metric": meta.metric, "complete": p.complete,
                    "diverged": p.diverged, "pruned": p.pruned, "total": p.total,
                    "running": p.running, "waiting": p.waiting, "failed": p.failed,
                    "finished": p.finished})
    return out
