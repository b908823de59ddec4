"""The study record: what noise-search keeps in an Optuna study, under which key, read back typed.

Every trial and study attribute noise-search writes is named here, once; the runner writes
through `TrialRecord.to_attrs()` / `StudyMeta.to_attrs()`, and results, the SQL view, the report
and the tests read through `TrialRecord.from_trial()` / `StudyMeta.read()`. The keys are the ones
existing databases hold (the SQL view's columns are named after them), so they never change;
a new attribute gets a new key.

A trial's configuration is stored as its key ("hidden_pre:0.1", the name users type), which is
its identity in the queue; it is parsed into a `NoiseConfig` here and nowhere else. σ is stored
once more, per site (``sigma_<site>``), because that is what SQL users filter on; the Optuna
parameters (``placement``, ``std``, ``std_<site>``) are Optuna's, for its samplers and the
dashboard. Studies written before this module also stored a ``std`` user attribute; it is
neither written nor read any more.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from search.analysis import stats
from search.noise import BASELINE, NoiseConfig, Site, parse_config_key

if TYPE_CHECKING:
    from search.engine._common import TrainResult
    from search.spec import StudySpec

# --- study user attributes ---------------------------------------------------------------------
SPEC_ATTR = "spec"  # the effective study file (StudySpec.to_dict()); marks a noise-search study
ENGINE_VERSION_ATTR = "engine_version"  # absent: version 1
METRIC_ATTR = "metric"  # also a trial attribute: the metric of the values
GRID_ATTR = "grid"  # configuration keys queued at creation (a sampler study: the baseline)
DASHBOARD_STAMP_ATTR = "dashboard_figures_for"  # completed trials the saved figures show
RACE_DECIDED_ATTR = "race_decided"  # racing: seeds per configuration whose round is decided

# --- trial user attributes ---------------------------------------------------------------------
CONFIG_ATTR = "config"  # the configuration's key: its identity, set when it is queued
KIND_ATTR = "kind"  # additive | multiplicative, set when it is queued
PLACEMENT_ATTR = "placement"
SIGMA_ATTR_PREFIX = "sigma_"  # + site name: σ at that site, 0.0 where it gets no noise
WORKER_ATTR = "worker"  # host:pid of the process that ran the trial
REPEATS_ATTR = "repeats"
TEST_VALUES_ATTR = "test_values"  # per repeat, clean test metric
TRAIN_VALUES_ATTR = "train_values"
TEST_LOSS_VALUES_ATTR = "test_loss_values"
TRAIN_LOSS_VALUES_ATTR = "train_loss_values"
SUMMARY_FIELDS = ("mean", "sd", "sem", "ci_low", "ci_high")  # "test_mean", "train_ci_low", ...
DURATION_ATTR = "duration_s"
ENGINE_ATTR = "engine"
FAILURE_ATTR = "failure"  # why the trial failed, in words
DIVERGED_ATTR = "diverged"  # True: failed because training diverged (deterministic, so done)
PRUNED_REASON_ATTR = "pruned_reason"  # racing stopped the configuration early: why, in words
# [robustness] (search/engine/noisy_eval.py): the robust score per repeat (the area under its
# profile over the test-σ grid's width) and its aggregates "robust_mean", "robust_sd", ...;
# the profile: per test σ {"test_std", "n", "mean", "sd", "sem", "ci_low", "ci_high",
# "values" (per repeat)}, in grid order (the view noise_search_robustness unnests it);
# certified accuracy: {"std", "radii", "values" (per radius, per repeat)}.
ROBUST_VALUES_ATTR = "robust_values"
ROBUSTNESS_ATTR = "robustness"
CERTIFIED_ATTR = "certified"

# --- trial system attributes (kept out of optuna-dashboard's attribute table) -------------------
# The learning curves of a trial, {"epochs": [...], curve name: per repeat [...]}: written by
# studies before every trial was recorded in blocks; the curves are now each block's own, and
# `stored_curves` reads either.
CURVES_ATTR = "noise_search:curves"
WEIGHTS_ATTR = "noise_search:weights"  # repeat 0's final parameters, when small enough
MAX_STORED_WEIGHTS = 200_000  # numbers in all; a larger model's weights are not stored
# The mean test curve goes to optuna-dashboard as intermediate values at no more record points
# than this: each is a database write of its own (400 of them were ~0.4 s per trial on SQLite,
# a tenth of the tutorial grid's run); the whole curves are in the blocks, for the report.
MAX_INTERMEDIATE_VALUES = 50
# One attribute per trained block of seeds (+ its first repeat index; a study that does not
# race has one block), written in one storage call, so a block is recorded entirely or not
# at all: {"repeats": [start, stop], "seconds", metric and loss values per repeat, "curves"}.
# The trial's aggregates, curves and intermediate values are derived from the blocks.
BLOCK_ATTR_PREFIX = "noise_search:block:"


def sigma_attr(site: Site | str) -> str:
    return SIGMA_ATTR_PREFIX + (site.value if isinstance(site, Site) else site)


def summary_attr(prefix: str, field: str) -> str:
    """"test", "mean" -> "test_mean": the stored aggregates of the test and train metric."""
    return f"{prefix}_{field}"


def _rounded(values: Any, digits: int = 6) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in np.asarray(values).ravel())


def config_of(attrs: dict[str, Any]) -> NoiseConfig | None:
    """The configuration a trial's user attributes name; None for a trial that is not ours."""
    key = attrs.get(CONFIG_ATTR)
    if key is None:
        return None
    # A builder study's keys name its own sites: any site name is read back.
    return parse_config_key(key, attrs.get(KIND_ATTR, "additive"), allowed=None)


def queued_attrs(config: NoiseConfig) -> dict[str, Any]:
    """What a configuration carries in the queue, before a worker takes it."""
    return {CONFIG_ATTR: config.key, KIND_ATTR: config.kind}


def _summary(attrs: dict[str, Any], prefix: str) -> stats.Summary | None:
    if summary_attr(prefix, "mean") not in attrs:
        return None
    values: dict[str, Any] = {f: attrs.get(summary_attr(prefix, f)) for f in SUMMARY_FIELDS}
    return stats.Summary(n=int(attrs.get(REPEATS_ATTR) or 0), **values)


def _values(attrs: dict[str, Any], key: str) -> tuple[float, ...] | None:
    stored = attrs.get(key)
    return None if stored is None else tuple(stored)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as noise-search records it. Fields are None where nothing was recorded."""

    config: NoiseConfig
    key: str  # as stored: the configuration's identity in the queue
    number: int = -1  # -1: not read from a stored trial
    state: TrialState = TrialState.RUNNING
    worker: str | None = None
    metric: str | None = None
    repeats: int | None = None
    test_values: tuple[float, ...] | None = None
    train_values: tuple[float, ...] | None = None
    test_loss_values: tuple[float, ...] | None = None
    train_loss_values: tuple[float, ...] | None = None
    test: stats.Summary | None = None  # aggregates as stored (of the unrounded values)
    train: stats.Summary | None = None
    duration_s: float | None = None
    engine: str | None = None
    failure: str | None = None
    diverged: bool = False
    pruned_reason: str | None = None
    robust_values: tuple[float, ...] | None = None  # [robustness]: robust score per repeat
    robust: stats.Summary | None = None
    profile: tuple[dict[str, Any], ...] | None = None  # ROBUSTNESS_ATTR, one entry per test σ
    certified: dict[str, Any] | None = None  # CERTIFIED_ATTR

    @classmethod
    def started(cls, config: NoiseConfig, worker: str) -> TrialRecord:
        return cls(config, config.key, worker=worker)

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord | None:
        """Read a stored trial; None if it is not a noise-search trial (no configuration)."""
        a = trial.user_attrs
        config = config_of(a)
        if config is None:
            return None
        return cls(
            config, a[CONFIG_ATTR], number=trial.number, state=trial.state,
            worker=a.get(WORKER_ATTR), metric=a.get(METRIC_ATTR), repeats=a.get(REPEATS_ATTR),
            test_values=_values(a, TEST_VALUES_ATTR), train_values=_values(a, TRAIN_VALUES_ATTR),
            test_loss_values=_values(a, TEST_LOSS_VALUES_ATTR),
            train_loss_values=_values(a, TRAIN_LOSS_VALUES_ATTR),
            test=_summary(a, "test"), train=_summary(a, "train"),
            duration_s=a.get(DURATION_ATTR), engine=a.get(ENGINE_ATTR),
            failure=a.get(FAILURE_ATTR), diverged=bool(a.get(DIVERGED_ATTR, False)),
            pruned_reason=a.get(PRUNED_REASON_ATTR),
            robust_values=_values(a, ROBUST_VALUES_ATTR), robust=_summary(a, "robust"),
            profile=tuple(a[ROBUSTNESS_ATTR]) if ROBUSTNESS_ATTR in a else None,
            certified=a.get(CERTIFIED_ATTR))

    def objective_value(self, objective: str) -> float | list[float]:
        """What Optuna is told (study.objective): the mean clean test metric, the mean robust
        score, or both (a multi-objective study)."""
        assert self.test is not None
        if objective == "clean":
            return self.test.mean
        assert self.robust is not None, "objective robust/both needs [robustness]"
        return self.robust.mean if objective == "robust" else [self.test.mean, self.robust.mean]

    @property
    def profile_values(self) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]] | None:
        """(test σ grid, per σ the values per repeat), or None without [robustness]."""
        if not self.profile:
            return None
        return (tuple(float(p["test_std"]) for p in self.profile),
                tuple(tuple(float(v) for v in p["values"]) for p in self.profile))

    @property
    def done(self) -> bool:
        """Needs no more work: completed, stopped by racing (PRUNED), or failed by diverging
        (which would happen again)."""
        return self.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            self.state == TrialState.FAIL and self.diverged)

    @classmethod
    def from_blocks(cls, config: NoiseConfig, spec: StudySpec,
                    blocks: list[dict[str, Any]]) -> TrialRecord:
        """The record of a configuration's seeds so far, from its stored blocks (in order;
        a study that does not race has one). The aggregates are of the blocks' unrounded
        values; the values per repeat are stored rounded."""
        def joined(name: str) -> np.ndarray | None:
            """The blocks' values in repeat order; None if a block has none ([robustness])."""
            if any(b.get(name) is None for b in blocks):
                return None
            return np.concatenate([np.asarray(b[name], np.float64) for b in blocks])

        test, train = joined("test_metric"), joined("train_metric")
        assert test is not None and train is not None
        return cls(
            config, config.key, state=TrialState.RUNNING, metric=spec.metric,
            repeats=int(test.size), test_values=_rounded(test), train_values=_rounded(train),
            test_loss_values=_rounded(joined("test_loss")),
            train_loss_values=_rounded(joined("train_loss")),
            test=stats.summarize(test, bounds=stats.bounds_of(spec.metric)),
            train=stats.summarize(train, bounds=stats.bounds_of(spec.metric)),
            duration_s=round(sum(float(b["seconds"]) for b in blocks), 3),
            engine=spec.study.engine,
            **_robustness_fields(spec, joined("robustness"), joined("certified")))

    def identity_attrs(self) -> dict[str, Any]:
        """The configuration, as the queue, the SQL view and the dashboard read it."""
        attrs: dict[str, Any] = {CONFIG_ATTR: self.key, PLACEMENT_ATTR: self.config.placement,
                                 KIND_ATTR: self.config.kind}
        # Every built-in site (0.0 where it gets none: the SQL view's columns), then a builder
        # study's own sites of this configuration (sigma_conv1; no view column).
        attrs.update({sigma_attr(site): self.config.sigma(site)
                      for site in (*Site, *self.config.sites)})
        return attrs

    def to_attrs(self, identity: bool = True) -> dict[str, Any]:
        """The trial user attributes of this record (what is None is left out)."""
        attrs = self.identity_attrs() if identity else {}
        plain = {WORKER_ATTR: self.worker, METRIC_ATTR: self.metric, REPEATS_ATTR: self.repeats,
                 TEST_VALUES_ATTR: self.test_values, TRAIN_VALUES_ATTR: self.train_values,
                 TEST_LOSS_VALUES_ATTR: self.test_loss_values,
                 TRAIN_LOSS_VALUES_ATTR: self.train_loss_values,
                 DURATION_ATTR: self.duration_s, ENGINE_ATTR: self.engine,
                 FAILURE_ATTR: self.failure, DIVERGED_ATTR: self.diverged or None,
                 PRUNED_REASON_ATTR: self.pruned_reason,
                 ROBUST_VALUES_ATTR: self.robust_values, CERTIFIED_ATTR: self.certified}
        attrs.update({k: list(v) if isinstance(v, tuple) else v
                      for k, v in plain.items() if v is not None})
        if self.profile is not None:
            attrs[ROBUSTNESS_ATTR] = list(self.profile)
        for prefix, summary in (("test", self.test), ("train", self.train),
                                ("robust", self.robust)):
            if summary is not None:
                attrs.update({summary_attr(prefix, f): getattr(summary, f)
                              for f in SUMMARY_FIELDS})
        return attrs


def _robustness_fields(spec: StudySpec, profiles: Any, certified: Any) -> dict[str, Any]:
    """TrialRecord fields of the metric under test-time noise: ``profiles`` (repeats, test σ)
    and ``certified`` (repeats, radius) or None, as TrainResult has them (none without)."""
    from search.analysis import robustness

    r = spec.robustness
    if r is None or profiles is None:
        return {}
    scores = robustness.robust_scores(r.input_std, profiles)
    bounds = stats.bounds_of(spec.metric)  # a profile and its area hold the metric's values
    entries = []
    for std, column in zip(r.input_std, np.asarray(profiles, np.float64).T):
        summary = stats.summarize(column, bounds=bounds)
        entries.append({"test_std": std, "n": summary.n,
                        **{f: getattr(summary, f) for f in SUMMARY_FIELDS},
                        "values": list(_rounded(column))})
    fields: dict[str, Any] = {"robust_values": _rounded(scores),
                              "robust": stats.summarize(scores, bounds=bounds),
                              "profile": tuple(entries)}
    if certified is not None:
        fields["certified"] = {"std": r.certify_std, "radii": list(r.certify_radii),
                               "values": [list(_rounded(c)) for c in np.asarray(certified).T]}
    return fields


def failure_attrs(reason: str, diverged: bool = False,
                  seconds: float | None = None) -> dict[str, Any]:
    """What a failed trial records: why, and whether it diverged (then also how long it ran)."""
    attrs: dict[str, Any] = {FAILURE_ATTR: reason}
    if diverged:
        attrs[DIVERGED_ATTR] = True
    if seconds is not None:
        attrs[DURATION_ATTR] = round(seconds, 3)
    return attrs


def curves_value(result: TrainResult) -> dict[str, Any]:
    """A block's learning curves: the recorded epochs and each curve per repeat."""
    curves: dict[str, Any] = {"epochs": list(result.curve_epochs)}
    curves.update({name: [list(_rounded(row, 5)) for row in values]
                   for name, values in result.curves.items()})
    return curves


def intermediate_values(curves: dict[str, Any]) -> list[tuple[int, float]]:
    """(epoch, mean clean test metric over the repeats recorded) from a trial's curves, for
    optuna-dashboard's intermediate values: at most MAX_INTERMEDIATE_VALUES record points,
    evenly spaced, the first and the last always among them; points where the mean is not
    finite are left out. A raced trial's are written again after each block (Optuna replaces
    the value at a step), so they are always the mean over the seeds recorded so far."""
    epochs = list(curves["epochs"])
    if not epochs:
        return []
    with np.errstate(invalid="ignore"):
        mean_curve = np.mean(np.asarray(curves["test_metric"], np.float64), axis=0)
    count = min(len(epochs), MAX_INTERMEDIATE_VALUES)
    picked = np.unique(np.round(np.linspace(0, len(epochs) - 1, count)).astype(int))
    return [(int(epochs[i]), float(mean_curve[i])) for i in picked
            if np.isfinite(mean_curve[i])]


def weights_value(result: TrainResult) -> list[dict[str, Any]] | None:
    """The WEIGHTS_ATTR value (repeat 0's final parameters), or None when there are none or
    more than MAX_STORED_WEIGHTS numbers. 9 significant digits read back as the same float32."""
    weights = getattr(result, "weights", None)
    if not weights or sum(int(np.size(w)) for w in weights) > MAX_STORED_WEIGHTS:
        return None
    return [{"shape": list(np.shape(w)),
             "values": [float(f"{v:.9g}") for v in np.asarray(w, np.float32).ravel()]}
            for w in weights]


def block_attr(start: int) -> str:
    return f"{BLOCK_ATTR_PREFIX}{start}"


def block_value(result: TrainResult, repeats: range, seconds: float) -> dict[str, Any]:
    """The BLOCK_ATTR value of one trained block of seeds (full precision: the aggregates are
    computed from it, as `measured` computes them from the unrounded values)."""
    value: dict[str, Any] = {"repeats": [repeats.start, repeats.stop],
                             "seconds": round(seconds, 3)}
    for name in ("test_metric", "train_metric", "test_loss", "train_loss"):
        value[name] = [float(v) for v in getattr(result, name)]
    for name in ("robustness", "certified"):  # [robustness]: per repeat, per σ (or radius)
        found = getattr(result, name, None)
        if found is not None:
            value[name] = np.asarray(found, np.float64).tolist()
    value["curves"] = curves_value(result)
    return value


def stored_blocks(trial: FrozenTrial) -> list[dict[str, Any]]:
    """The racing blocks a trial recorded, contiguous from seed 0, in order."""
    found = {int(k[len(BLOCK_ATTR_PREFIX):]): v for k, v in trial.system_attrs.items()
             if k.startswith(BLOCK_ATTR_PREFIX)}
    blocks, seeds = [], 0
    while seeds in found:
        blocks.append(found[seeds])
        seeds = int(found[seeds]["repeats"][1])
    return blocks


def seeds_recorded(trial: FrozenTrial) -> int:
    blocks = stored_blocks(trial)
    return int(blocks[-1]["repeats"][1]) if blocks else 0


def merged_curves(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A trial's learning curves from its blocks' ({"epochs": [...], curve name: per repeat
    [...]}, repeats in order)."""
    merged: dict[str, Any] = {"epochs": blocks[0]["curves"]["epochs"]}
    for name in blocks[0]["curves"]:
        if name != "epochs":
            merged[name] = [row for b in blocks for row in b["curves"][name]]
    return merged


def stored_curves(trial: FrozenTrial) -> dict[str, Any] | None:
    """The trial's learning curves (see merged_curves), from its blocks, or from CURVES_ATTR
    for a study recorded before blocks; None when it has none."""
    blocks = stored_blocks(trial)
    if blocks and all("curves" in b for b in blocks):
        return merged_curves(blocks)
    stored = trial.system_attrs.get(CURVES_ATTR)
    return stored or None


def stored_weights(trial: FrozenTrial) -> tuple[np.ndarray, ...] | None:
    """Repeat 0's final parameters [W0, b0, W1, b1, ...] as float32, if the trial stored them."""
    stored = trial.system_attrs.get(WEIGHTS_ATTR)
    if not stored:
        return None
    return tuple(np.asarray(w["values"], np.float32).reshape(w["shape"]) for w in stored)


def records(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    """The noise-search trials among ``trials``, read."""
    out = []
    for trial in trials:
        record = TrialRecord.from_trial(trial)
        if record is not None:
            out.append(record)
    return out


def done_keys(trials: Iterable[FrozenTrial]) -> set[str]:
    """Keys of the configurations that need no more work (see TrialRecord.done)."""
    return {r.key for r in records(trials) if r.done}


def stored_baseline_mean(trials: Iterable[FrozenTrial]) -> float | None:
    """Mean test metric of the completed baseline as stored, or None if it has not completed."""
    for r in records(trials):
        if r.key == BASELINE and r.state == TrialState.COMPLETE and r.test is not None:
            return r.test.mean
    return None


def queued_configurations(spec: StudySpec) -> list[NoiseConfig]:
    """What a study queues up front: its grid, or for tpe / random the baseline alone."""
    if spec.study.sampler == "grid":
        return spec.configurations()
    return [NoiseConfig((), spec.noise.kind)]


class _HasAttrs(Protocol):
    @property
    def user_attrs(self) -> dict[str, Any]: ...

    @property
    def directions(self) -> list[Any]: ...


@dataclass(frozen=True)
class StoredSpec:
    """The study file a study was created from, as stored (SPEC_ATTR: StudySpec.to_dict()),
    read once into the fields those who report on a study use, with the defaults of studies
    that predate a key. Nothing is validated again and no model is built: the full StudySpec
    is `spec.from_dict(stored.raw, ...)`, for what must rebuild data or models."""

    raw: dict[str, Any]
    sampler: str = "grid"
    n_trials: int | None = None
    repeats: int = 0
    objective: str = "clean"  # clean | robust | both
    placements: tuple[str, ...] = ()
    races: bool = False  # it has a [racing] section
    builder: str | None = None  # model.builder: a model of the user's
    dataset: str | None = None
    n_train: Any = None
    hidden: Any = None
    epochs: Any = None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> StoredSpec:
        raw = raw or {}
        study, model, data = (raw.get(k) or {} for k in ("study", "model", "data"))
        n_trials = study.get("n_trials")
        return cls(
            raw, sampler=str(study.get("sampler", "grid")),
            n_trials=None if n_trials is None else int(n_trials),
            repeats=int(study.get("repeats", 0)),
            objective=str(study.get("objective", "clean")),
            placements=tuple((raw.get("noise") or {}).get("placements") or ()),
            races="racing" in raw, builder=model.get("builder"),
            dataset=data.get("dataset"), n_train=data.get("n_train"),
            hidden=model.get("hidden"), epochs=model.get("epochs"))


@dataclass(frozen=True)
class StudyMeta:
    """What a study records about itself at creation, read by everyone who reports on it."""

    spec: dict[str, Any]  # StudySpec.to_dict() of the study file it was created from
    configurations: tuple[str, ...]  # keys queued at creation: the grid, or the baseline
    metric: str
    direction: str  # maximize | minimize
    engine_version: int

    @functools.cached_property
    def stored(self) -> StoredSpec:
        """``spec``, read typed (once)."""
        return StoredSpec.parse(self.spec)

    @property
    def sampler(self) -> str:
        return self.stored.sampler

    @property
    def total(self) -> int:
        """How many configurations the study runs: its grid, or a sampler's n_trials."""
        if self.sampler == "grid" or self.stored.n_trials is None:
            return len(self.configurations)
        return self.stored.n_trials

    @classmethod
    def from_spec(cls, spec: StudySpec, engine_version: int) -> StudyMeta:
        return cls(spec.to_dict(), tuple(c.key for c in queued_configurations(spec)),
                   spec.metric, spec.direction, engine_version)

    @classmethod
    def read(cls, study: _HasAttrs) -> StudyMeta | None:
        """The meta of an optuna Study or FrozenStudy; None if noise-search did not create it."""
        a = study.user_attrs
        if SPEC_ATTR not in a:
            return None
        # directions[0]: an objective = "both" study has two (clean, robust), alike.
        direction = "maximize" if study.directions[0].name == "MAXIMIZE" else "minimize"
        return cls(a[SPEC_ATTR], tuple(a.get(GRID_ATTR) or ()), a.get(METRIC_ATTR, "value"),
                   direction, int(a.get(ENGINE_VERSION_ATTR, 1)))

    def to_attrs(self) -> dict[str, Any]:
        """The study user attributes (the direction is Optuna's own)."""
        return {SPEC_ATTR: self.spec, ENGINE_VERSION_ATTR: self.engine_version,
                METRIC_ATTR: self.metric, GRID_ATTR: list(self.configurations)}


@dataclass(frozen=True)
class Progress:
    """How far a study is: configurations done (completed or diverged) of its total."""

    total: int
    complete: int  # configurations completed
    diverged: int  # configurations that diverged: done, never run again
    running: int  # trials
    waiting: int
    failed: int  # trials failed otherwise (interrupted, errors, duplicates): run again
    pruned: int = 0  # configurations racing stopped early: done

    @property
    def done(self) -> int:
        return self.complete + self.diverged + self.pruned

    @property
    def finished(self) -> bool:
        return self.done >= self.total and self.running == 0 and self.waiting == 0


def progress(meta: StudyMeta, trials: Iterable[FrozenTrial]) -> Progress:
    trials = list(trials)
    read = records(trials)
    complete = {r.key for r in read if r.state == TrialState.COMPLETE}
    pruned = {r.key for r in read if r.state == TrialState.PRUNED} - complete
    diverged = {r.key for r in read if r.done} - complete - pruned
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    return Progress(meta.total, len(complete), len(diverged), count[TrialState.RUNNING],
                    count[TrialState.WAITING],
                    count[TrialState.FAIL] - sum(r.state == TrialState.FAIL and r.diverged
                                                 for r in read), len(pruned))
