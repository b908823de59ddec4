"""Blocks of seeds and racing on the Optuna side (a study file's [racing] section; the rule is
analysis/racing.py).

Every configuration is one trial, trained in blocks of seeds (`Schedule`): a study that does
not race has one block of study.repeats; a race's blocks end at its checkpoints (first,
first + each, ..., study.repeats). Each block is recorded in one trial system attribute
(study/record.py, BLOCK_ATTR_PREFIX), so it is recorded entirely or not at all, and the
trial's aggregates, curves and intermediate values are derived from its blocks. Between
blocks the trial is WAITING again: RUNNING -> WAITING is a state change Optuna's storage
allows, and `fail_stale_trials` only looks at RUNNING trials, so a parked trial never goes
stale.

A trial parked at a checkpoint is not taken until that round is decided. When every
configuration still racing has its seeds up to the checkpoint, `advance` runs the decision
once, under the study lock, stops the losers (PRUNED, with `pruned_reason`) and records the
checkpoint in the study attribute RACE_DECIDED_ATTR. A trial whose worker died is failed by
the usual stale-trial recovery and queued again with the blocks it had recorded (`carried`),
so no recorded block is ever trained twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.analysis.racing import RaceSettings, decide
from search.noise import BASELINE
from search.spec import StudySpec
from search.study import record
from search.study._ids import trial_id

_LIVE = (TrialState.WAITING, TrialState.RUNNING)


def settings(spec: StudySpec) -> RaceSettings | None:
    """The race of a study, or None when it does not race."""
    r = spec.racing
    if r is None:
        return None
    return RaceSettings(r.first, r.each, r.alpha, r.test, spec.study.repeats,
                        len(spec.configurations()))


@dataclass(frozen=True)
class Schedule:
    """The blocks of seeds every configuration is trained in, and the race that decides after
    each block (None: a study that does not race trains one block of all study.repeats)."""

    checkpoints: tuple[int, ...]  # seeds recorded after each block; the last is study.repeats
    race: RaceSettings | None

    @property
    def maximum(self) -> int:
        return self.checkpoints[-1]

    def next_block(self, seeds: int) -> range:
        """The repeats a configuration with ``seeds`` recorded trains next: up to the next
        checkpoint. Empty when it has them all."""
        stop = next((c for c in self.checkpoints if c > seeds), seeds)
        return range(seeds, stop)


def of(spec: StudySpec) -> Schedule:
    """The blocks a study's configurations are trained in."""
    race = settings(spec)
    if race is None:
        return Schedule((spec.study.repeats,), None)
    return Schedule(race.checkpoints(), race)


def decided(study: optuna.Study) -> int:
    """Seeds per configuration up to which the race is decided (0: no round yet)."""
    return int(study.user_attrs.get(record.RACE_DECIDED_ATTR, 0))


def ready(trial: FrozenTrial, decided_up_to: int, race: RaceSettings) -> bool:
    """Whether a WAITING trial may be taken: its next block does not wait for a decision."""
    seeds = record.seeds_recorded(trial)
    return seeds == 0 or seeds <= decided_up_to or seeds >= race.maximum


def carried(trials: Iterable[FrozenTrial], key: str) -> dict[str, Any]:
    """The blocks earlier trials of configuration ``key`` recorded (their most), as system
    attributes for the trial that takes over."""
    best: FrozenTrial | None = None
    for t in trials:
        if t.user_attrs.get(record.CONFIG_ATTR) == key and (
                best is None or record.seeds_recorded(t) > record.seeds_recorded(best)):
            best = t
    if best is None:
        return {}
    return {record.block_attr(int(b["repeats"][0])): b for b in record.stored_blocks(best)}


def _racing(meta: record.StudyMeta,
            trials: list[FrozenTrial]) -> dict[str, tuple[FrozenTrial | None, int]]:
    """Each configuration not done: its live trial (None if it has none now) and the most
    seeds any of its trials recorded."""
    done = record.done_keys(trials)
    out: dict[str, tuple[FrozenTrial | None, int]] = {}
    for key in meta.configurations:
        if key in done:
            continue
        mine = [t for t in trials if t.user_attrs.get(record.CONFIG_ATTR) == key]
        live = next((t for t in mine if t.state in _LIVE), None)
        out[key] = (live, max((record.seeds_recorded(t) for t in mine), default=0))
    return out


class Stopped(NamedTuple):
    """A configuration a round stopped: its key, the seeds it ran and why."""

    key: str
    seeds: int
    reason: str


class Decided(NamedTuple):
    """What `advance` did: the rounds it decided and the configurations they stopped."""

    rounds: int
    stopped: tuple[Stopped, ...]


def _prune(storage: optuna.storages.RDBStorage, trial: FrozenTrial, reason: str,
           mean: float) -> None:
    tid = trial_id(trial)
    storage.set_trial_user_attr(tid, record.PRUNED_REASON_ATTR, reason)
    # The value of a stopped configuration is the mean of the seeds it ran, as for a
    # completed one (Optuna's own pruning would take the last intermediate value: one seed).
    storage.set_trial_state_values(tid, TrialState.PRUNED, [mean])


def advance(study: optuna.Study, storage: optuna.storages.RDBStorage,
            meta: record.StudyMeta, race: RaceSettings) -> Decided:
    """Decide every round that is complete and not yet decided: how many were, and whom they
    stopped.

    The caller holds the study lock, so each round is decided once.
    """
    rounds = 0
    stopped: list[Stopped] = []
    up_to = decided(study)
    trials = study.get_trials(deepcopy=False)
    racing = _racing(meta, trials)
    for checkpoint in race.checkpoints()[:-1]:
        if checkpoint <= up_to:
            continue
        if any(live is None or seeds < checkpoint for live, seeds in racing.values()):
            break  # the round is not complete (or a configuration awaits its retry)
        values: dict[str, list[float]] = {}
        for key, (live, _) in racing.items():
            assert live is not None
            blocks = record.stored_blocks(live)
            values[key] = [v for b in blocks for v in b["test_metric"]][:checkpoint]
        stops = decide(values, BASELINE, meta.direction == "maximize", race)
        for key, reason in stops.items():
            live = racing.pop(key)[0]
            assert live is not None
            _prune(storage, live, reason, sum(values[key]) / len(values[key]))
            stopped.append(Stopped(key, len(values[key]), reason))
        study.set_user_attr(record.RACE_DECIDED_ATTR, checkpoint)
        rounds += 1
    return Decided(rounds, tuple(stopped))
