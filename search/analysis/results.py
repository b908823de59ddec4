"""Stored trials -> one typed result per configuration, the shape every output starts from.

`read_results` reads the trials once and builds each configuration's `ConfigResult` (its
aggregates, its `Versus` the baseline, the bootstrap interval, its `RobustResult` under
test-time noise) without changing anything after it is made; `ConfigResult.as_dict` is the
row of `results --format json`. The CLI's table / CSV / JSON, the API, the SQL view's tests
and the report all read these, so the numbers a person sees are the same everywhere. A new
statistic is a field of `Versus` (search.analysis.paired) computed in `Versus.of`, and a
column in format.COLUMNS.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import optuna

from search import format as fmt
from search.analysis import stats
from search.analysis.paired import PairedComparison, Versus, compare_paired, holm_family
from search.analysis.robust_results import RobustResult, pareto_front, robust_results
from search.errors import StudyError
from search.noise import BASELINE, parse_config_key
from search.study import record
from search.study.record import Progress, StoredSpec, StudyMeta, TrialRecord

# States whose trials carry per-seed values: run to the end, or stopped early by racing.
MEASURED = ("COMPLETE", "PRUNED")
_STATE_ORDER = {"COMPLETE": 0, "RUNNING": 1, "WAITING": 2, "FAIL": 3, "PRUNED": 4}
# The keys every row has besides its aggregates: the bootstrap interval and Versus's.
STAT_KEYS = ("bootstrap_ci_low", "bootstrap_ci_high",
             *(f.name for f in dataclasses.fields(Versus) if f.name != "diff"))


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
class ConfigResult:
    """One configuration's result: its stored aggregates (``mean``, ``sd``, ``ci_*`` over the
    seeds it ran), its comparison with the baseline (``versus``; None when it has no values
    or there is no baseline), the bootstrap interval of its mean, with [robustness] its
    `RobustResult`, and ``pareto`` for objective "both". `as_dict` is its row of `results
    --format json`, keys in the order they have always had."""

    config: str
    placement: str
    std: float | dict[str, float] | None  # a σ per site where they differ (builder studies)
    kind: str
    state: str
    trial: int
    n: int | None
    mean: float | None
    sd: float | None
    sem: float | None
    ci_low: float | None
    ci_high: float | None
    train_mean: float | None
    duration_s: float | None
    failure: str | None
    pruned_reason: str | None
    metric: str
    versus: Versus | None = None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None
    robust: RobustResult | None = None
    pareto: bool | None = None

    @property
    def measured(self) -> bool:
        """Completed, or stopped early by racing: it has per-seed values."""
        return self.state in MEASURED

    def as_dict(self) -> dict[str, Any]:
        versus = dataclasses.asdict(self.versus or Versus())
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                               if f.name not in _NOT_FLAT}
        out["diff"] = versus.pop("diff")
        out["bootstrap_ci_low"] = self.bootstrap_ci_low
        out["bootstrap_ci_high"] = self.bootstrap_ci_high
        out.update(versus)
        if self.robust is not None:
            out.update(self.robust.as_dict())
        if self.pareto is not None:
            out["pareto"] = self.pareto
        return out


_NOT_FLAT = frozenset({"versus", "bootstrap_ci_low", "bootstrap_ci_high", "robust", "pareto"})


@dataclass(frozen=True)
class StudyResults:
    name: str
    metric: str
    direction: str  # maximize | minimize
    configs: list[ConfigResult]  # best first: completed, stopped by racing, then the rest
    progress: Progress
    # Per-repeat test values of each measured configuration (completed, or stopped by racing),
    # kept out of the rows (and so out of the JSON) because they are long; `compare` and the
    # recommendation read them.
    values: dict[str, list[float]] = field(default_factory=dict)
    # The study file it was created from, as stored, read once (its objective, repeats, ...).
    spec: StoredSpec = field(default_factory=lambda: StoredSpec.parse(None))
    # [robustness]: the robust score per repeat of each measured configuration
    # (search.analysis.robust_results).
    robust_values: dict[str, list[float]] = field(default_factory=dict)
    # Per-repeat train values of each measured configuration (the seed-level DataFrame).
    train_values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def objective(self) -> str:
        """What the study optimises: clean | robust | both (study.objective)."""
        return self.spec.objective

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The configurations as `results --format json` lists them (made once)."""
        return [c.as_dict() for c in self.configs]

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
    def baseline_config(self) -> ConfigResult | None:
        """The baseline's result, once it has completed."""
        return next((c for c in self.configs if c.placement == BASELINE
                     and c.state == "COMPLETE"), None)

    @property
    def completed_configs(self) -> list[ConfigResult]:
        """The results of the configurations trained on every seed, best first."""
        return [c for c in self.configs if c.state == "COMPLETE"]

    def row_of(self, config: str) -> dict[str, Any] | None:
        """The JSON row of configuration ``config``."""
        return next((r for r in self.rows if r["config"] == config), None)

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["state"] == "COMPLETE"]

    @property
    def measured(self) -> list[dict[str, Any]]:
        """Rows with values: completed, or stopped early by racing (PRUNED, fewer seeds)."""
        return [r for r in self.rows if r["state"] in MEASURED]


def _finite(value: float | None) -> float | None:
    """Rows go out as strict JSON: a non-finite number written by other code becomes null."""
    return None if value is None or not math.isfinite(value) else value


def _config_result(r: TrialRecord, metric: str) -> ConfigResult:
    test, train = r.test, r.train
    # Cut to the metric's range here too: studies stored before the record did so.
    ci_low, ci_high = stats.clip((test.ci_low, test.ci_high) if test else (None, None),
                                 stats.bounds_of(r.metric))
    return ConfigResult(
        r.key, r.config.placement, r.config.std_value(), r.config.kind, r.state.name,
        r.number, r.repeats, _finite(test.mean) if test else None,
        _finite(test.sd) if test else None, _finite(test.sem) if test else None,
        _finite(ci_low), _finite(ci_high), _finite(train.mean) if train else None,
        _finite(r.duration_s), r.failure, r.pruned_reason, metric)


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


def read_results(study: optuna.Study) -> StudyResults:
    """One result per configuration, best first; configurations not yet complete at the end."""
    meta = _meta(study)
    maximize = meta.direction == "maximize"
    trials = study.get_trials(deepcopy=False)
    by_config: dict[str, list[TrialRecord]] = {}
    for r in record.records(trials):
        by_config.setdefault(r.key, []).append(r)
    records = {key: _representative(found) for key, found in by_config.items()}
    configs = {key: _config_result(r, meta.metric) for key, r in records.items()}
    values = {key: [float(v) for v in records[key].test_values or ()]
              for key, c in configs.items()
              if c.measured and _all_finite(records[key].test_values)}
    train_values = {key: [float(v) for v in records[key].train_values or ()] for key in values}
    base = configs.get(BASELINE)
    base = base if base is not None and base.state == "COMPLETE" else None
    configs = {key: _with_statistics(c, values, base, maximize) for key, c in configs.items()}
    compared = holm_family({k: c.versus for k, c in configs.items()
                            if c.versus is not None and c.versus.p_paired is not None},
                           values, values.get(BASELINE) if base is not None else None)
    configs = {k: dataclasses.replace(c, versus=compared.get(k, c.versus))
               for k, c in configs.items()}
    objective = meta.stored.objective
    robust = robust_results(
        {k: records[k] for k, c in configs.items() if c.measured},
        base.config if base is not None else None, maximize, meta.metric)
    configs = {k: dataclasses.replace(c, robust=robust.get(k)) for k, c in configs.items()}
    if objective == "both":
        front = pareto_front({k: (c.mean, c.robust.mean if c.robust else None)
                              for k, c in configs.items()}, maximize)
        configs = {k: dataclasses.replace(c, pareto=front.get(k)) for k, c in configs.items()}
    sign = -1.0 if maximize else 1.0
    rank = {"COMPLETE": 0, "PRUNED": 1}  # then the rest: running, queued, failed

    def key(c: ConfigResult) -> tuple[int, float, str]:
        # what the study optimises first: the robust score for objective "robust"
        value = (c.robust.mean if c.robust else None) if objective == "robust" else c.mean
        return rank.get(c.state, 2), sign * value if value is not None else 0.0, c.config

    ordered = sorted(configs.values(), key=key)
    return StudyResults(study.study_name, meta.metric, meta.direction, ordered,
                        record.progress(meta, trials), values, meta.stored,
                        {k: list(r.values) for k, r in robust.items()}, train_values)


def _with_statistics(c: ConfigResult, values: dict[str, list[float]],
                     base: ConfigResult | None, maximize: bool) -> ConfigResult:
    """The bootstrap interval of ``c``'s mean and its comparison with the baseline (before
    Holm's adjustment, which needs the whole family)."""
    own = values.get(c.config)
    low = high = None
    if own is not None:
        low, high = stats.bootstrap_ci(own, bounds=stats.bounds_of(c.metric))
    compared: Versus | None = None
    if c.measured and base is not None and c.mean is not None and base.mean is not None:
        compared = Versus(diff=c.mean - base.mean)  # without per-seed values: the means
        if own is not None and c is not base and base.config in values:
            compared = Versus.of(own, values[base.config], maximize, c.metric)
    return dataclasses.replace(c, versus=compared, bootstrap_ci_low=low,
                               bootstrap_ci_high=high)


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


def unpaired_dict(c: stats.Comparison) -> dict[str, Any]:
    """`compare --format json`'s unpaired numbers: Welch's test, Cohen's d, same-seed wins."""
    return {"p_welch": c.p_value, "welch_ci_low": c.diff_ci_low,
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
