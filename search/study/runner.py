"""StudyRunner: a worker on one study, taking configurations and training them until none is
left. One trial is one noise configuration. The runner trains it in blocks of seeds, each
block's repeats together by the engine: a study that does not race has one block of all
study.repeats; a racing study's blocks end at the race's checkpoints (study/schedule.py), and
the trial is taken once per block. Every block is recorded the same way (`_record_block`).

The runner is the only place that talks to a running Optuna trial; what it writes is the
study record (search.study.record).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from search import engine, views
from search.analysis import stats
from search.data import Dataset, load_dataset
from search.engine._common import TrainResult
from search.noise import NoiseConfig
from search.spec import StudySpec
from search.storage import retrying, study_lock
from search.study import queue, record, schedule
from search.study._ids import trial_id
from search.study.heartbeat import Heartbeat
from search.study.opening import open_study
from search.study.space import suggest

# (spec, data, config) -> all repeats; (spec, data, config, repeats=range(start, stop)) -> a block.
Trainer = Callable[..., TrainResult]


@dataclass(frozen=True)
class TrialOutcome:
    """What one finished trial (or, racing, one block of seeds) reports to the caller.

    A raced block leaves its trial WAITING for the next block, or PRUNED (``failure`` then
    says why it stopped), or COMPLETE; ``summary`` is over the seeds recorded so far;
    ``stopped``: every configuration the rounds this block completed stopped (its own too).
    """

    number: int
    config: NoiseConfig
    state: TrialState
    summary: stats.Summary | None
    seconds: float
    failure: str | None = None
    stopped: tuple[schedule.Stopped, ...] = ()

    @property
    def others_stopped(self) -> tuple[schedule.Stopped, ...]:
        """The other configurations the rounds this block completed stopped."""
        return tuple(s for s in self.stopped if s.key != self.config.key)

    @property
    def configurations_done(self) -> int:
        """How many configurations this outcome finishes (for a progress bar): its own unless
        it is WAITING (a raced block, more seeds to come), and each other one it stopped."""
        return int(self.state != TrialState.WAITING) + len(self.others_stopped)


class StudyRunner:
    """A worker on one study: takes configurations and trains them until none is left.

    ``data``: the study's dataset when the caller has loaded it already. ``train``: the
    trainer; by default the study's engine, loaded (with TensorFlow) here, before a trial is
    taken, so that no trial is held while it loads. A given trainer loads no engine.
    """

    def __init__(self, spec: StudySpec, storage: optuna.storages.RDBStorage,
                 train: Trainer | None = None, data: Dataset | None = None):
        self.spec = spec
        self.storage = storage
        self.data = data if data is not None else load_dataset(spec)
        self._train: Trainer = train or engine.for_study(spec).train
        self._stop: threading.Event | None = None
        self.study = open_study(spec, storage)
        meta = record.StudyMeta.read(self.study)
        assert meta is not None  # open_study stored it
        self.meta = meta
        self.schedule = schedule.of(spec)

    # -- the queue --------------------------------------------------------------------------

    def total(self) -> int:
        return self.meta.total

    def done_count(self) -> int:
        return len(record.done_keys(self.study.get_trials(deepcopy=False)))

    def _next_trial(self) -> optuna.Trial | None:
        return queue.next_trial(self.study, self.storage, self.spec, self.meta)

    def recover(self) -> int:
        """Fail trials whose worker stopped beating, and queue what the study still lacks.

        Returns how many configurations were queued (again).
        """
        return queue.recover(self.study, self.storage, self.spec, self.meta)

    def run(self, on_done: Callable[[TrialOutcome], None] | None = None,
            poll_seconds: float = 2.0,
            stop: threading.Event | None = None) -> list[TrialOutcome]:
        """Run trials until the queue is empty and no other worker holds one.

        Storage calls are retried through a passing server outage (``storage.retrying``).
        ``stop``, once set, ends the run with KeyboardInterrupt before the next trial: the
        backstop for an interrupt that Python swallowed (raised inside a finalizer). The SQL
        view of every trial (search.views) is brought up to date first and after each trial.
        """
        self._stop = stop
        views.refresh_view(self.storage)
        retrying(self.recover, "recovering stale trials")
        outcomes = []
        while True:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            trial = retrying(self._next_trial, "taking the next configuration")
            if trial is None:
                if self._others_hold_trials(poll_seconds):
                    continue
                break
            outcome = self.run_trial(trial)
            views.refresh_view(self.storage)
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        return outcomes

    def _others_hold_trials(self, poll_seconds: float) -> bool:
        """With the queue empty: whether there may be more to do (then after a wait)."""
        # What another worker gave back (interrupted) or left behind (died) is queued again
        # here, so that the last worker standing finishes the study.
        if retrying(self.recover, "recovering stale trials"):
            return True
        running = retrying(lambda: self.study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)), "reading the study")
        if not running:
            return False
        # Another worker holds a trial; if it dies, its trial comes back to the queue.
        if self._stop is not None:
            self._stop.wait(poll_seconds)
        else:
            time.sleep(poll_seconds)
        return True

    # -- one trial --------------------------------------------------------------------------

    def _start(self, trial: optuna.Trial) -> NoiseConfig:
        config = suggest(trial, self.spec)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        for key, value in record.TrialRecord.started(config, worker).to_attrs().items():
            trial.set_user_attr(key, value)
        return config

    def _train_block(self, trial: optuna.Trial,
                     block: range) -> tuple[NoiseConfig, TrainResult | None]:
        """Train the trial's configuration on the repeats of ``block`` (an empty block trains
        nothing: its seeds were all recorded before a crash)."""
        try:
            with Heartbeat(self.storage, trial_id(trial), self.storage.get_heartbeat_interval()):
                config = retrying(lambda: self._start(trial), f"starting trial {trial.number}")
                result: TrainResult | None = None
                if block == range(0, self.schedule.maximum):
                    # The whole study's repeats: the trainer's default (Engine.train).
                    result = self._train(self.spec, self.data, config)
                elif len(block):
                    result = self._train(self.spec, self.data, config, repeats=block)
                if self._stop is not None and self._stop.is_set():
                    raise KeyboardInterrupt  # delivered while training, but swallowed
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"
            self._fail_quietly(trial, reason)
            raise
        return config, result

    def run_trial(self, trial: optuna.Trial) -> TrialOutcome:
        """Train the trial's next block of seeds (a study that does not race: all of them) and
        record it: the trial then is COMPLETE, WAITING for its next block, or PRUNED by the
        round its block completed."""
        what = f"recording trial {trial.number}"
        seeds = retrying(lambda: record.seeds_recorded(self.storage.get_trial(trial_id(trial))),
                         f"reading trial {trial.number}")
        block = self.schedule.next_block(seeds)
        started = time.perf_counter()
        config, result = self._train_block(trial, block)
        seconds = time.perf_counter() - started
        try:
            if result is not None and result.diverged:
                reason = result.divergence_reason()
                retrying(lambda: self._record_divergence(trial, reason, seconds), what)
                return TrialOutcome(trial.number, config, TrialState.FAIL, None, seconds, reason)
            state, summary, why, stopped = retrying(
                lambda: self._record_block(trial, config, block, result, seconds), what)
        except KeyboardInterrupt:
            self._fail_quietly(trial, "interrupted")
            raise
        return TrialOutcome(trial.number, config, state, summary, seconds, why, stopped)

    def _record_block(self, trial: optuna.Trial, config: NoiseConfig, block: range,
                      result: TrainResult | None, seconds: float,
                      ) -> tuple[TrialState, stats.Summary | None, str | None,
                                 tuple[schedule.Stopped, ...]]:
        """Record a trained block (one storage call: all of it or nothing), derive the trial's
        record from its blocks, complete or park it, and (racing) decide the rounds now
        complete. Under the study lock: recovery (which fails stale trials) cannot come
        between seeing the trial still ours and recording it, and a round is decided once,
        after its last block."""
        tid = trial_id(trial)
        with study_lock(self.storage, self.study.study_name):
            frozen = self.storage.get_trial(tid)
            seeds = record.seeds_recorded(frozen)
            # A retry after a lost connection may find its own block recorded already, and
            # the trial even parked or completed by it (its commit's answer was lost).
            ours = seeds == block.stop and result is not None and block.stop > block.start
            if ours and frozen.state in (TrialState.WAITING, TrialState.COMPLETE):
                blocks = record.stored_blocks(frozen)
                done = record.TrialRecord.from_blocks(config, self.spec, blocks)
                return frozen.state, done.test, None, ()
            if frozen.state != TrialState.RUNNING or (seeds != block.start and not ours):
                # Our heartbeat did not reach the storage for longer than the grace period
                # (an outage), so another worker declared the trial stale and queued it again.
                return (frozen.state, None, "taken over: its heartbeat was lost, the block is "
                                            "run again", ())
            blocks = record.stored_blocks(frozen)
            if result is not None and not ours:
                value = record.block_value(result, block, seconds)
                self.storage.set_trial_system_attr(tid, record.block_attr(block.start), value)
                blocks.append(value)
                weights = record.weights_value(result) if block.start == 0 else None
                if weights is not None:
                    self.storage.set_trial_system_attr(tid, record.WEIGHTS_ATTR, weights)
            measured = self._derive(tid, config, blocks)
            stopped: tuple[schedule.Stopped, ...] = ()
            if self.schedule.race is not None:
                stopped = schedule.advance(self.study, self.storage, self.meta,
                                       self.schedule.race).stopped
            after = self.storage.get_trial(tid)
        return (after.state, measured.test, after.user_attrs.get(record.PRUNED_REASON_ATTR),
                stopped)

    def _derive(self, tid: int, config: NoiseConfig,
                blocks: list[dict[str, Any]]) -> record.TrialRecord:
        """The trial's record and intermediate values from its blocks (the curves stay in the
        blocks: record.stored_curves merges them); then COMPLETE with its objective value(s)
        once it has every seed, else WAITING for its next block."""
        measured = record.TrialRecord.from_blocks(config, self.spec, blocks)
        for key, value in measured.to_attrs(identity=False).items():
            self.storage.set_trial_user_attr(tid, key, value)
        if len(self.study.directions) == 1:  # Optuna keeps them for one objective only
            for epoch, value in record.intermediate_values(record.merged_curves(blocks)):
                self.storage.set_trial_intermediate_value(tid, epoch, value)
        if (measured.repeats or 0) >= self.schedule.maximum:
            value = measured.objective_value(self.spec.study.objective)
            self.storage.set_trial_state_values(
                tid, TrialState.COMPLETE, value if isinstance(value, list) else [value])
        else:  # back to the queue for its next block (RUNNING -> WAITING)
            self.storage.set_trial_state_values(tid, TrialState.WAITING)
        return measured

    def _record_divergence(self, trial: optuna.Trial, reason: str, seconds: float) -> None:
        for key, value in record.failure_attrs(reason, diverged=True, seconds=seconds).items():
            trial.set_user_attr(key, value)
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def _fail_quietly(self, trial: optuna.Trial, reason: str) -> None:
        """Mark a trial failed on the way out; if the storage is gone, staleness will do it."""
        try:
            for key, value in record.failure_attrs(reason).items():
                trial.set_user_attr(key, value)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except (SQLAlchemyError, optuna.exceptions.OptunaError):
            # Called while an interrupt or an error is on its way out: a storage that is gone
            # must not replace it. The trial's heartbeat stops, so it goes stale and is failed
            # and queued again by the next worker.
            pass
