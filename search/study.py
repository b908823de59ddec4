"""Optuna: create or resume a study, hand out its configurations, run and record trials.

One trial is one noise configuration (DESIGN.md decision 1); its repeats are
trained together by the engine. For a grid study every configuration is put
into Optuna's queue as a WAITING trial when the study is created, and workers
take trials from the queue: taking one is an atomic state change in the
database, so each grid point runs once however many workers share the study.
A trial whose worker died (no heartbeat) is failed and queued again.

The objective is the only place that talks to the Optuna trial (STYLE.md).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search import engine, stats, views
from search import spec as spec_module
from search.data import Dataset, load_dataset
from search.engine._common import ENGINE_VERSION
from search.errors import NoiseSearchError
from search.noise import BASELINE, NoiseConfig, Site, parse_config_key, parse_placement
from search.spec import StudySpec
from search.storage import retrying, study_lock

SPEC_ATTR = "spec"
ENGINE_VERSION_ATTR = "engine_version"
GRID_ATTR = "grid"
CURVES_ATTR = "noise_search:curves"  # system attr: per-repeat curves, kept out of the dashboard
CONFIG_ATTR = "config"
DIVERGED_ATTR = "diverged"
WORKER_ATTR = "worker"  # host:pid of the process that ran the trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

Trainer = Callable[[StudySpec, Dataset, NoiseConfig], engine.TrainResult]


def _round(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values).ravel()]


@dataclass(frozen=True)
class TrialOutcome:
    """What one finished trial reports to the caller (progress bar, summaries)."""

    number: int
    config: NoiseConfig
    state: TrialState
    summary: stats.Summary | None
    seconds: float
    failure: str | None = None


def _std_range(grid: tuple[float, ...], sampled: bool) -> tuple[float, float, bool]:
    """(low, high, log) of a σ parameter: the grid's span, log-scaled when a sampler draws it."""
    if not sampled:
        return min(grid), max(grid), False
    positive = [v for v in grid if v > 0] or [1e-6]
    low, high = min(positive), max(grid)
    return low, max(high, low), True


def trial_params(config: NoiseConfig, spec: StudySpec) -> dict[str, object]:
    """The parameters optuna-dashboard shows for a configuration: placement, then σ.

    Sites that share the study's grid (`noise.std`) share one parameter `std`; a
    site with its own grid in `[noise.site_std]` gets `std_<site>`, whose range is
    that grid's. The baseline has no parameters: "none" is not a placement to sample.
    """
    if config.is_baseline:
        return {}
    per_site = dict(spec.noise.site_std)
    params: dict[str, object] = {"placement": config.placement}
    for site, sigma in config.sigmas:
        params[f"std_{site.value}" if site.value in per_site else "std"] = sigma
    return params


def _suggest_param(trial: optuna.Trial, name: str, spec: StudySpec) -> Any:
    """Suggest one parameter of `trial_params` (a queued trial gets its fixed value back)."""
    if name == "placement":
        return trial.suggest_categorical("placement", list(spec.noise.placements))
    grid = spec.noise.std if name == "std" else dict(spec.noise.site_std)[name[len("std_"):]]
    low, high, log = _std_range(grid, sampled=spec.study.sampler != "grid")
    return trial.suggest_float(name, low, high, log=log)


def _suggest(trial: optuna.Trial, spec: StudySpec) -> NoiseConfig:
    """The trial's configuration, recorded as its parameters.

    Queued trials carry their configuration; for tpe / random the sampler draws it.
    """
    key = trial.user_attrs.get(CONFIG_ATTR)
    if key is not None:
        config = parse_config_key(key, spec.noise.kind)
        for name in trial_params(config, spec):
            _suggest_param(trial, name, spec)
        return config
    sites = parse_placement(str(_suggest_param(trial, "placement", spec)))
    per_site = dict(spec.noise.site_std)
    sigmas = []
    for site in sites:
        name = f"std_{site.value}" if site.value in per_site else "std"
        # Sites without their own grid share one σ: suggesting "std" again returns it.
        sigmas.append((site, float(_suggest_param(trial, name, spec))))
    return NoiseConfig(tuple(sigmas), spec.noise.kind)


class _Heartbeat:
    """Records the trial's heartbeat from a thread while the engine trains."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int,
                 interval: float | None):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
            except Exception:  # a passing outage: the next beat retries
                pass
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> _Heartbeat:
        if self._interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class StudyRunner:
    """A worker on one study: takes configurations and trains them until none is left."""

    def __init__(self, spec: StudySpec, storage: optuna.storages.RDBStorage,
                 train: Trainer | None = None):
        self.spec = spec
        self.storage = storage
        self.data = load_dataset(spec)
        if train is None:
            engine.load(spec.study.engine)  # TensorFlow loads now, before a trial is taken
        self._train = train or engine.train
        self._stop: threading.Event | None = None
        self.study = open_study(spec, storage)
        views.refresh_view(storage)  # the SQL view of every trial, for sqlite3 / psql

    # -- the queue --------------------------------------------------------------------------

    def grid(self) -> list[NoiseConfig]:
        return self.spec.configurations()

    def total(self) -> int:
        return len(self.grid()) if self.spec.study.sampler == "grid" else self.spec.study.n_trials

    def done_count(self) -> int:
        return len(_done_keys(self.study.get_trials(deepcopy=False)))

    def _pop_waiting(self) -> optuna.Trial | None:
        """Take the first queued trial whose configuration still needs work.

        Under the study lock, so that SQLite (whose read-then-write is not atomic across
        processes) hands each trial to one worker too. A popped trial whose configuration is
        already done, or held by a lower-numbered trial, is a duplicate (e.g. an enqueue that
        was retried after a lost connection): it is failed as such and never trained.
        """
        with study_lock(self.storage, self.study.study_name):
            trials = self.study.get_trials(deepcopy=False)
            for frozen in trials:
                if frozen.state != TrialState.WAITING:
                    continue
                # Heartbeat first: a worker that dies right after taking the trial leaves a
                # RUNNING trial that goes stale, never one that nobody can recover.
                self.storage.record_heartbeat(frozen._trial_id)
                try:
                    if not self.storage.set_trial_state_values(frozen._trial_id,
                                                               TrialState.RUNNING):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                holder = _holder(trials, frozen)
                if holder is None:
                    return optuna.Trial(self.study, frozen._trial_id)
                self.storage.set_trial_user_attr(frozen._trial_id, "failure",
                                                 f"duplicate of trial {holder.number}")
                self.storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
        return None

    def _next_trial(self) -> optuna.Trial | None:
        trial = self._pop_waiting()
        if trial is not None or self.spec.study.sampler == "grid":
            return trial
        # tpe / random: the sampler proposes until n_trials configurations exist.
        with study_lock(self.storage, self.study.study_name):
            live = self.study.get_trials(deepcopy=False, states=(
                TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
            if len(live) >= self.spec.study.n_trials:
                return None
            trial = self.study.ask()
            self.storage.record_heartbeat(trial._trial_id)
            return trial

    def recover(self) -> int:
        """Fail trials whose worker stopped beating, and queue what the grid still lacks.

        Returns how many configurations were queued (again).
        """
        with study_lock(self.storage, self.study.study_name):
            optuna.storages.fail_stale_trials(self.study)
            if self.spec.study.sampler == "grid":
                return _enqueue_missing(self.study, self.spec, self.grid())
            return _enqueue_missing(self.study, self.spec,
                                    [NoiseConfig((), self.spec.noise.kind)])

    def run(self, on_done: Callable[[TrialOutcome], None] | None = None,
            poll_seconds: float = 2.0,
            stop: threading.Event | None = None) -> list[TrialOutcome]:
        """Run trials until the queue is empty and no other worker holds one.

        Storage calls are retried through a passing server outage (``storage.retrying``).
        ``stop``, once set, ends the run with KeyboardInterrupt before the next trial: the
        backstop for an interrupt that Python swallowed (raised inside a finalizer).
        """
        self._stop = stop
        retrying(self.recover, "recovering stale trials")
        outcomes = []
        while True:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            trial = retrying(self._next_trial, "taking the next configuration")
            if trial is None:
                # What another worker gave back (interrupted) or left behind (died) is queued
                # again here, so that the last worker standing finishes the grid.
                if retrying(self.recover, "recovering stale trials"):
                    continue
                running = retrying(lambda: self.study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,)), "reading the study")
                if not running:
                    break
                # Another worker holds a trial; if it dies, its trial comes back to the queue.
                if stop is not None:
                    stop.wait(poll_seconds)
                else:
                    time.sleep(poll_seconds)
                continue
            outcome = self.run_trial(trial)
            views.refresh_view(self.storage)
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        return outcomes

    # -- one trial --------------------------------------------------------------------------

    def run_trial(self, trial: optuna.Trial) -> TrialOutcome:
        started = time.perf_counter()
        what = f"recording trial {trial.number}"

        def prepare() -> NoiseConfig:
            config = _suggest(trial, self.spec)
            for key, value in _config_attrs(config).items():
                trial.set_user_attr(key, value)
            trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
            return config

        config: NoiseConfig | None = None
        try:
            with _Heartbeat(self.storage, trial._trial_id, self.storage.get_heartbeat_interval()):
                config = retrying(prepare, f"starting trial {trial.number}")
                result = self._train(self.spec, self.data, config)
                if self._stop is not None and self._stop.is_set():
                    raise KeyboardInterrupt  # delivered while training, but swallowed
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"
            self._fail_quietly(trial, reason)
            raise
        seconds = time.perf_counter() - started
        try:
            if result.diverged:
                reason = result.divergence_reason()

                def record_divergence() -> None:
                    trial.set_user_attr("failure", reason)
                    trial.set_user_attr(DIVERGED_ATTR, True)
                    trial.set_user_attr("duration_s", round(seconds, 3))
                    self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

                retrying(record_divergence, what)
                return TrialOutcome(trial.number, config, TrialState.FAIL, None, seconds, reason)
            summary = retrying(lambda: _record(trial, self.spec, result, seconds), what)
            retrying(lambda: self.study.tell(trial, summary.mean, skip_if_finished=True), what)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # finished meanwhile: by an earlier attempt of ours, or by another worker
        except KeyboardInterrupt:
            self._fail_quietly(trial, "interrupted")
            raise
        state = retrying(lambda: self.storage.get_trial(trial._trial_id).state, what)
        if state != TrialState.COMPLETE:
            # Our heartbeat did not reach the storage for longer than the grace period (an
            # outage), so another worker declared the trial stale and queued it again.
            return TrialOutcome(trial.number, config, state, None, seconds,
                                "taken over: its heartbeat was lost, the configuration is "
                                "run again")
        return TrialOutcome(trial.number, config, TrialState.COMPLETE,
                            stats.summarize(result.test_metric), seconds)

    def _fail_quietly(self, trial: optuna.Trial, reason: str) -> None:
        """Mark a trial failed on the way out; if the storage is gone, staleness will do it."""
        try:
            trial.set_user_attr("failure", reason)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except Exception:
            pass


def _config_attrs(config: NoiseConfig) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        CONFIG_ATTR: config.key,
        "placement": config.placement,
        "kind": config.kind,
        "std": config.std_value(),
    }
    for site in Site:
        attrs[f"sigma_{site.value}"] = config.sigma(site)
    return attrs


def _record(trial: optuna.Trial, spec: StudySpec, result: engine.TrainResult,
            seconds: float) -> stats.Summary:
    """Store per-repeat values, aggregates and curves on the trial; return the test summary."""
    test = stats.summarize(result.test_metric)
    train = stats.summarize(result.train_metric)
    attrs: dict[str, Any] = {
        "metric": spec.metric,
        "repeats": int(result.test_metric.size),
        "test_values": _round(result.test_metric),
        "train_values": _round(result.train_metric),
        "test_loss_values": _round(result.test_loss),
        "train_loss_values": _round(result.train_loss),
        "duration_s": round(seconds, 3),
        "engine": spec.study.engine,
    }
    for prefix, summary in (("test", test), ("train", train)):
        for name, value in summary.as_dict().items():
            if name != "n":
                attrs[f"{prefix}_{name}"] = value
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    curves: dict[str, Any] = {"epochs": list(result.curve_epochs)}
    curves.update({name: [_round(row, 5) for row in values]
                   for name, values in result.curves.items()})
    trial.storage.set_trial_system_attr(trial._trial_id, CURVES_ATTR, curves)
    mean_curve = np.mean(result.curves["test_metric"], axis=0)
    for epoch, value in zip(result.curve_epochs, mean_curve):
        if np.isfinite(value):
            trial.report(float(value), step=int(epoch))
    return test


def _done_keys(trials: list[FrozenTrial]) -> set[str]:
    """Configurations that need no more work: completed, or failed by diverging (deterministic)."""
    done = set()
    for t in trials:
        key = t.user_attrs.get(CONFIG_ATTR)
        if key is None:
            continue
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL
                                              and t.user_attrs.get(DIVERGED_ATTR)):
            done.add(key)
    return done


def _holder(trials: list[FrozenTrial], trial: FrozenTrial) -> FrozenTrial | None:
    """Another trial that makes ``trial`` redundant: its configuration done, or held by a
    lower-numbered queued or running trial."""
    key = trial.user_attrs.get(CONFIG_ATTR)
    if key is None:
        return None
    for other in trials:
        if other.number == trial.number or other.user_attrs.get(CONFIG_ATTR) != key:
            continue
        if key in _done_keys([other]):
            return other
        if other.state in (TrialState.WAITING, TrialState.RUNNING) and other.number < trial.number:
            return other
    return None


def _enqueue_missing(study: optuna.Study, spec: StudySpec, configs: list[NoiseConfig]) -> int:
    """Queue each configuration that is neither done, queued nor running. Returns how many."""
    trials = study.get_trials(deepcopy=False)
    taken = _done_keys(trials)
    for t in trials:
        if t.state in (TrialState.WAITING, TrialState.RUNNING):
            key = t.user_attrs.get(CONFIG_ATTR)
            if key:
                taken.add(key)
    added = 0
    for config in configs:
        if config.key in taken:
            continue
        study.enqueue_trial(trial_params(config, spec), user_attrs={CONFIG_ATTR: config.key,
                                                                    "kind": config.kind},
                            skip_if_exists=False)
        added += 1
    return added


def open_study(spec: StudySpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    """Create the study, or load it and refuse if it was made from a different spec.

    Under the study lock: workers that start together create it, and store its spec, once.
    """
    def locked() -> optuna.Study:
        with study_lock(storage, spec.study.name):
            return _open_study(spec, storage)

    return retrying(locked, f"opening study {spec.study.name!r}")


def _open_study(spec: StudySpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    name = spec.study.name
    current = spec.to_dict()
    try:
        direction = (optuna.study.StudyDirection.MAXIMIZE if spec.direction == "maximize"
                     else optuna.study.StudyDirection.MINIMIZE)
        study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        stored = study.user_attrs.get(SPEC_ATTR)
        if stored is None and not study.user_attrs and not study.get_trials(deepcopy=False):
            # Its creator died between creating it and storing its spec: adopt it.
            _describe(study, spec)
            return study
        if stored is None:
            raise NoiseSearchError(
                f"study {name!r} exists but was not created by noise-search; "
                "choose another name with --study-name"
            ) from None
        diffs = spec_module.differences(stored, current)
        stored_version = study.user_attrs.get(ENGINE_VERSION_ATTR, 1)
        if not diffs and stored_version != ENGINE_VERSION:
            raise NoiseSearchError(
                f"study {name!r} was run by engine version {stored_version} and this is version "
                f"{ENGINE_VERSION}, whose random streams differ; results would mix. Start a new "
                "study with --study-name"
            ) from None
        if diffs:
            raise NoiseSearchError(
                f"study {name!r} was created from a different spec: {'; '.join(diffs[:3])}"
                + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "")
                + "; results would mix. Run it as stored, or start a new study with --study-name"
            ) from None
        return study
    _describe(study, spec)
    return study


def _describe(study: optuna.Study, spec: StudySpec) -> None:
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.set_user_attr(ENGINE_VERSION_ATTR, ENGINE_VERSION)
    study.set_user_attr("metric", spec.metric)
    study.set_user_attr("grid", [c.key for c in spec.configurations()]
                        if spec.study.sampler == "grid" else [BASELINE])
