"""The queue of configurations in the shared storage.

For a grid study every configuration is put into Optuna's queue as a WAITING trial when the
study is created, and workers take trials from it: taking one is a state change in the
database under the study lock, so each grid point runs once however many workers share the
study. A trial whose worker died (no heartbeat) is failed and its configuration queued again.
For tpe / random only the baseline is queued; the sampler proposes the rest.

A racing study (study/schedule.py) queues the same trials, but a trial comes back to the
queue after each block of seeds, and is only taken when its next block does not wait for
the round's decision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.noise import NoiseConfig
from search.spec import StudySpec
from search.storage import study_lock
from search.study import record, schedule
from search.study._ids import trial_id
from search.study.space import sampler, trial_params

_HELD = (TrialState.WAITING, TrialState.RUNNING)


def _holder(trials: list[FrozenTrial], trial: FrozenTrial) -> FrozenTrial | None:
    """Another trial that makes ``trial`` redundant: its configuration done, or held by a
    lower-numbered queued or running trial."""
    key = trial.user_attrs.get(record.CONFIG_ATTR)
    if key is None:
        return None
    for other in trials:
        if other.number == trial.number or other.user_attrs.get(record.CONFIG_ATTR) != key:
            continue
        if key in record.done_keys([other]):
            return other
        if other.state in _HELD and other.number < trial.number:
            return other
    return None


def _take(storage: optuna.storages.RDBStorage, frozen: FrozenTrial) -> bool:
    """WAITING -> RUNNING; False if another worker took it first."""
    # Heartbeat first: a worker that dies right after taking the trial leaves a RUNNING
    # trial that goes stale, never one that nobody can recover.
    storage.record_heartbeat(trial_id(frozen))
    try:
        return bool(storage.set_trial_state_values(trial_id(frozen), TrialState.RUNNING))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def _racing_order(study: optuna.Study, spec: StudySpec | None,
                  trials: list[FrozenTrial]) -> tuple[list[FrozenTrial],
                                                       Callable[[FrozenTrial], bool]]:
    """The order in which queued trials are taken, and which may be taken: for a race, the
    configurations with the fewest seeds first (rounds complete sooner), none whose next
    block waits for a decision."""
    settings = schedule.settings(spec) if spec is not None else None
    if settings is None:
        return trials, lambda frozen: True
    up_to = schedule.decided(study)
    ordered = sorted(trials, key=lambda t: (record.seeds_recorded(t), t.number))
    return ordered, lambda frozen: schedule.ready(frozen, up_to, settings)


def pop_waiting(study: optuna.Study, storage: optuna.storages.RDBStorage,
                spec: StudySpec | None = None) -> optuna.Trial | None:
    """Take the first queued trial whose configuration still needs work.

    Under the study lock, so that SQLite (whose read-then-write is not atomic across
    processes) hands each trial to one worker too. A popped trial whose configuration is
    already done, or held by a lower-numbered trial, is a duplicate (e.g. an enqueue that
    was retried after a lost connection): it is failed as such and never trained.
    """
    with study_lock(storage, study.study_name):
        trials = study.get_trials(deepcopy=False)
        ordered, ready = _racing_order(study, spec, trials)
        for frozen in ordered:
            if (frozen.state != TrialState.WAITING or not ready(frozen)
                    or not _take(storage, frozen)):
                continue
            holder = _holder(trials, frozen)
            if holder is None:
                return optuna.Trial(study, trial_id(frozen))
            for key, value in record.failure_attrs(
                    f"duplicate of trial {holder.number}").items():
                storage.set_trial_user_attr(trial_id(frozen), key, value)
            storage.set_trial_state_values(trial_id(frozen), TrialState.FAIL)
    return None


def next_trial(study: optuna.Study, storage: optuna.storages.RDBStorage, spec: StudySpec,
               meta: record.StudyMeta) -> optuna.Trial | None:
    """A queued trial, or for tpe / random a new one the sampler proposes, until the study's
    total is done or held."""
    trial = pop_waiting(study, storage, spec)
    if trial is not None or meta.sampler == "grid":
        return trial
    with study_lock(storage, study.study_name):
        trials = study.get_trials(deepcopy=False)
        held = sum(t.state in _HELD for t in trials)
        if held + len(record.done_keys(trials)) >= meta.total:
            return None
        study.sampler = sampler(spec, len(trials))
        with warnings.catch_warnings():
            # Optuna warns that heartbeats belong to Study.optimize, which beats for the trial;
            # outside it, the runner does (search.study.heartbeat).
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = study.ask()
        storage.record_heartbeat(trial_id(trial))
        return trial


def enqueue_missing(study: optuna.Study, spec: StudySpec, configs: list[NoiseConfig]) -> int:
    """Queue each configuration that is neither done, queued nor running. Returns how many."""
    trials = study.get_trials(deepcopy=False)
    taken = record.done_keys(trials) | {r.key for r in record.records(trials)
                                        if r.state in _HELD}
    added = 0
    for config in configs:
        if config.key in taken:
            continue
        blocks = schedule.carried(trials, config.key)
        if blocks:  # a retry keeps the blocks of seeds recorded: none is trained twice
            study.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING, user_attrs=record.queued_attrs(config),
                system_attrs={"fixed_params": trial_params(config, spec), **blocks}))
        else:
            study.enqueue_trial(trial_params(config, spec),
                                user_attrs=record.queued_attrs(config), skip_if_exists=False)
        added += 1
    return added


def recover(study: optuna.Study, storage: optuna.storages.RDBStorage, spec: StudySpec,
            meta: record.StudyMeta | None = None) -> int:
    """Fail trials whose worker stopped beating, and queue what the study still lacks of the
    configurations it queues up front; in a race, decide the rounds that are complete.
    Returns how many trials were queued (again) plus rounds decided: 0 when nothing changed."""
    with study_lock(storage, study.study_name):
        optuna.storages.fail_stale_trials(study)
        queued = enqueue_missing(study, spec, record.queued_configurations(spec))
        settings = schedule.settings(spec)
        if settings is None or meta is None:
            return queued
        return queued + schedule.advance(study, storage, meta, settings).rounds
