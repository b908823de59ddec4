"""Everything a report shows, read from the study into plain dataclasses (no drawing).

Split as optuna's visualization modules are: `collect` reads the numbers (tested against the
stored ones, no rendering), `figures` only draws, `html` and `dashboard` write. The result
rows come from `search.results`, so every number here is the one `results` prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from search import format as fmt
from search.analysis import results as results_module
from search.analysis.recommend import recommend
from search.analysis.results import MEASURED
from search.analysis.stats import CONFIDENCE
from search.noise import BASELINE
from search.study.record import (
    StoredSpec,
    TrialRecord,
    stored_curves,
    stored_weights,
)

if TYPE_CHECKING:
    import optuna

# One progress callback signature for the CLI's progress bar: (what is being done, advance by).
Progress = Callable[[str, int], None]


class _Raced:
    """A configuration as figures name it: ``config``, ``n`` seeds, ``stopped`` by racing and
    why (``reason``); `ConfigData` and `Profile` both have them."""

    config: str
    n: int | None
    reason: str | None

    if TYPE_CHECKING:  # a field of Profile, a property of ConfigData
        @property
        def stopped(self) -> bool: ...

    @property
    def label(self) -> str:
        """Its name where configurations are listed: a stopped one says so."""
        return stopped_label(self.config) if self.stopped else self.config

    @property
    def status(self) -> str:
        """How far it ran, for a figure's hover text."""
        return race_status(self.n, self.stopped, self.reason)


@dataclass(frozen=True)
class ConfigData(_Raced):
    """One configuration as the figures need it; numbers are the stored ones."""

    config: str
    placement: str
    std: float | dict[str, float]
    state: str
    trial: int
    n: int | None
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    train_mean: float | None
    diff: float | None
    test_values: tuple[float, ...]
    train_values: tuple[float, ...]
    reason: str | None = None  # why racing stopped it (pruned_reason)

    @property
    def is_baseline(self) -> bool:
        return self.placement == BASELINE

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"

    @property
    def stopped(self) -> bool:
        """Stopped early by racing: measured, on fewer seeds."""
        return self.state == "PRUNED"

    @property
    def measured(self) -> bool:
        return self.state in MEASURED

    @property
    def sigma(self) -> float | None:
        """σ as a number for a σ axis; None when the sites of the placement differ."""
        return float(self.std) if not isinstance(self.std, dict) else None

    @property
    def sigma_label(self) -> str:
        return fmt.std(self.std)

    @property
    def described(self) -> str:
        if self.is_baseline:
            return "no noise"
        return f"{self.placement.replace('+', ' + ')} noise with σ = {self.sigma_label}"


def stopped_label(config: str) -> str:
    return f"{config} (stopped)"


def race_status(n: int | None, stopped: bool, reason: str | None) -> str:
    """n=15; or, for a configuration racing stopped, the seeds it ran and why it stopped."""
    if not stopped:
        return f"n={n}"
    return f"stopped by racing after {n} seeds: {reason or 'no reason stored'}"


@dataclass(frozen=True)
class Band:
    """Mean over repeats and its 95% confidence band, one value per recorded epoch."""

    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class Curves:
    config: str
    epochs: tuple[int, ...]
    test: Band
    train: Band


@dataclass(frozen=True)
class Boundary:
    """Decision boundary of repeat 0 of one configuration (see report.boundary)."""

    config: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    z: tuple[tuple[float, ...], ...]  # binary: P(class 1); multi-class: predicted class
    kind: str  # probability | class
    test_metric: float  # of the model drawn, measured like the study measures it
    stored_test_metric: float  # repeat 0 as the study stored it


@dataclass(frozen=True)
class Points:
    x_train: tuple[tuple[float, float], ...]
    y_train: tuple[int, ...]
    x_test: tuple[tuple[float, float], ...]
    y_test: tuple[int, ...]
    feature_names: tuple[str, str]


@dataclass(frozen=True)
class Profile(_Raced):
    """[robustness]: one configuration's metric under test-time input noise, per test σ (the
    `robustness` entries of its result row: mean over seeds, 95% CI, paired Δ vs baseline)."""

    config: str
    placement: str
    test_stds: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    diff: tuple[float | None, ...]  # None for the baseline itself
    robust_mean: float | None  # the robust score
    n: int | None = None  # seeds
    stopped: bool = False  # stopped early by racing
    reason: str | None = None  # why


@dataclass(frozen=True)
class RaceRow:
    """How far racing let one configuration go: the seeds it ran, and why it stopped."""

    config: str
    seeds: int
    state: str  # COMPLETE (ran to the maximum), PRUNED (stopped), or not finished
    reason: str | None  # pruned_reason


@dataclass(frozen=True)
class ReportData:
    name: str
    metric: str
    direction: str  # maximize | minimize
    spec: StoredSpec  # the study file it was created from
    total: int
    running: int
    waiting: int
    failed: int
    configs: tuple[ConfigData, ...]  # best first, then the unfinished ones
    rows: tuple[dict[str, Any], ...]  # the result rows of `configs`, for the summary table
    curves: tuple[Curves, ...]  # baseline first, then the best of each placement
    boundaries: tuple[Boundary, ...]
    points: Points | None
    notes: tuple[str, ...]  # why a figure is missing, in words
    created: str
    advice: str  # the recommendation's text (analysis.recommend)
    diverged: int = 0  # configurations that diverged: done (deterministic), never run again
    race: tuple[RaceRow, ...] = ()  # a racing study's configurations, most seeds first
    pruned: int = 0  # configurations racing stopped: done
    profiles: tuple[Profile, ...] = ()  # [robustness]: measured configurations, results order
    # Repeat 0's final weights of the baseline and the best, as stored (None: not stored), for
    # the decision boundaries (report.boundary.with_boundaries).
    weights: Mapping[str, tuple[np.ndarray, ...] | None] = field(default_factory=dict)

    @property
    def race_maximum(self) -> int:
        """Seeds a configuration gets at most (study.repeats)."""
        return self.spec.repeats

    @property
    def completed(self) -> tuple[ConfigData, ...]:
        """Configurations that ran to the end: only these can be the best."""
        return tuple(c for c in self.configs if c.complete)

    @property
    def measured(self) -> tuple[ConfigData, ...]:
        """What the figures draw: completed, and stopped by racing (on the seeds they ran)."""
        return tuple(c for c in self.configs if c.measured)

    @property
    def on_sigma_axis(self) -> tuple[ConfigData, ...]:
        """Measured noise configurations with one σ > 0 (the σ figure's points)."""
        return tuple(c for c in self.measured
                     if not c.is_baseline and c.sigma is not None and c.sigma > 0)

    @property
    def race_seeds(self) -> tuple[int, int]:
        """Seeds a race trained, and the seeds a full run would have trained."""
        return sum(r.seeds for r in self.race), self.race_maximum * len(self.race)

    @property
    def baseline(self) -> ConfigData | None:
        return next((c for c in self.completed if c.is_baseline), None)

    @property
    def best(self) -> ConfigData | None:
        return self.completed[0] if self.completed else None

    @property
    def finished(self) -> bool:
        done = len(self.completed) + self.diverged + self.pruned
        return done >= self.total and self.running == 0 and self.waiting == 0

    @property
    def placements(self) -> tuple[str, ...]:
        """Noise placements in the study file's order (the baseline is not one)."""
        listed = list(self.spec.placements)
        seen = [c.placement for c in self.configs if not c.is_baseline]
        return tuple(dict.fromkeys([*listed, *seen]))

    def best_of(self, placement: str) -> ConfigData | None:
        return next((c for c in self.completed if c.placement == placement), None)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The summary table's columns: format.REPORT_COLUMNS, then with [robustness] the
        robust ones `results` adds (robust score, CE, relative CE; pareto for "both")."""
        return fmt.REPORT_COLUMNS + fmt.robust_columns(bool(self.profiles),
                                                       self.spec.objective)

    @property
    def table_notes(self) -> tuple[str, ...]:
        """The legend under the summary table, made from the columns it shows: a paragraph
        for the clean columns, one for the robust ones, and the seeds a comparison that is
        not significant would need (as under `results`' table)."""
        clean = [c for c in self.table_columns if c not in fmt.ROBUST_COLUMNS + ("pareto",)]
        robust = [c for c in self.table_columns if c not in clean]
        return tuple(note for note in (fmt.legend(clean), fmt.legend(robust),
                                       fmt.seeds_needed_note(self.rows)) if note)

    def shown_profiles(self) -> tuple[Profile, ...]:
        """The profile curves drawn: the baseline, then the most robust configuration of each
        placement (by robust score in the study's direction), one that ran to the end before
        one racing stopped."""
        sign = 1.0 if self.maximize else -1.0
        chosen = [p for p in self.profiles if p.placement == BASELINE]
        for placement in self.placements:
            mine = [p for p in self.profiles if p.placement == placement
                    and p.robust_mean is not None]
            if mine:
                chosen.append(max(mine, key=lambda p: (not p.stopped,
                                                       sign * (p.robust_mean or 0.0))))
        return tuple(chosen)


def rounded(values: Iterable[float], digits: int = 6) -> tuple[float, ...]:
    """Plain Python floats (Plotly would store numpy arrays as typed arrays) of few digits."""
    return tuple(round(float(v), digits) for v in values)


def _band(values: np.ndarray) -> Band:
    """(R, T) -> mean and t-based 95% CI of the mean at each of the T points."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    n = values.shape[0]
    if n < 2:
        return Band(rounded(mean), rounded(mean), rounded(mean))
    half = sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return Band(rounded(mean), rounded(mean - half), rounded(mean + half))


def _config(row: dict[str, Any], trial: Any) -> ConfigData:
    stored = TrialRecord.from_trial(trial)
    return ConfigData(
        config=row["config"], placement=row["placement"], std=row["std"], state=row["state"],
        trial=row["trial"], n=row["n"], mean=row["mean"], sd=row["sd"], ci_low=row["ci_low"],
        ci_high=row["ci_high"], train_mean=row["train_mean"], diff=row["diff"],
        test_values=(stored and stored.test_values) or (),
        train_values=(stored and stored.train_values) or (), reason=row.get("pruned_reason"))


def collect(study: optuna.Study, *, progress: Progress | None = None) -> ReportData:
    """Everything the report shows that the study stores, read and nothing else: no model is
    trained here (decision boundaries are their own step, report.boundary.with_boundaries,
    which may retrain, and so is kept out of the storage's retries). Raises StudyError if
    nothing is complete."""
    res = results_module.read_results(study)
    results_module.require_completed(res)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    stored = res.spec
    configs = tuple(_config(row, trials[row["trial"]]) for row in res.rows)
    if progress is not None:
        progress(f"read {len(trials)} trials", 1)
    p = res.progress
    data = ReportData(
        name=res.name, metric=res.metric, direction=res.direction, spec=stored,
        total=max(p.total, 1), running=p.running, waiting=p.waiting, failed=p.failed,
        configs=configs, rows=tuple(res.rows), curves=(), boundaries=(), points=None, notes=(),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        advice=recommend(res).text, diverged=p.diverged, race=race_rows(stored, res.rows),
        pruned=p.pruned, profiles=profiles_of(res.rows),
    )
    curves, notes = _curves(data, trials)
    # Repeat 0's stored weights of the configurations a boundary is drawn for (read here, so
    # that drawing needs no storage).
    weights = {c.config: stored_weights(trials[c.trial])
               for c in (data.baseline, data.best) if c is not None}
    return replace(data, curves=curves, notes=(*notes, *_missing_figures(data)),
                   weights=weights)


def _missing_figures(data: ReportData) -> tuple[str, ...]:
    """Why a figure the report usually has is left out, in words."""
    if data.on_sigma_axis:
        return ()
    return ("Test metric against σ: not drawn, no noise configuration with one σ (the same at "
            "every site) has been measured",)


def profiles_of(rows: Iterable[dict[str, Any]]) -> tuple[Profile, ...]:
    """The robustness profiles of the measured rows that have one (completed, or stopped by
    racing: over the seeds they ran), in the rows' order."""
    out = []
    for r in rows:
        entries = r.get("robustness")
        if r["state"] not in MEASURED or not entries:
            continue
        out.append(Profile(
            r["config"], r["placement"], tuple(float(e["test_std"]) for e in entries),
            tuple(float(e["mean"]) for e in entries), tuple(e["ci_low"] for e in entries),
            tuple(e["ci_high"] for e in entries),
            tuple(None if r["placement"] == BASELINE else e["diff"] for e in entries),
            r.get("robust_mean"), r["n"], r["state"] == "PRUNED", r.get("pruned_reason")))
    return tuple(out)


def race_rows(spec: StoredSpec, rows: Iterable[dict[str, Any]]) -> tuple[RaceRow, ...]:
    """Seeds each configuration ran in a racing study (none for a study that does not race),
    most first, then by the results' order (best first)."""
    if not spec.races:
        return ()
    found = [RaceRow(r["config"], int(r["n"] or 0), r["state"], r.get("pruned_reason"))
             for r in rows]
    return tuple(sorted(found, key=lambda r: -r.seeds))


def _curves(data: ReportData, trials: dict[int, Any]) -> tuple[tuple[Curves, ...],
                                                                tuple[str, ...]]:
    """Learning curves of the baseline and of the best configuration of each placement."""
    notes: list[str] = []
    curves = []
    for config in [data.baseline] + [data.best_of(p) for p in data.placements]:
        if config is None:
            continue
        stored = stored_curves(trials[config.trial])
        if not stored:
            notes.append(f"{config.config}: no learning curves stored")
            continue
        curves.append(Curves(config.config, tuple(int(e) for e in stored["epochs"]),
                             _band(stored["test_metric"]), _band(stored["train_metric"])))
    return tuple(curves), tuple(notes)
