"""Deleting a study: its trials and attributes, with Optuna's storage API.

The study goes under its named lock (the one the queue takes), so no worker pops, queues or
recovers one of its trials half-way through; a study with RUNNING trials is refused unless
forced, since a worker is probably still training it. The SQL views read Optuna's tables
live: they stay, without the study's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from search import format as fmt
from search.analysis.results import load_study
from search.errors import StudyError
from search.storage import retrying, study_lock


@dataclass(frozen=True)
class StudyContents:
    """What deleting a study removes."""

    name: str
    trials: int
    complete: int
    running: int


def _contents(storage: optuna.storages.BaseStorage, name: str, force: bool) -> StudyContents:
    """The study's trials; an unknown name lists the studies, running trials need ``force``."""
    study = load_study(storage, name)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    contents = StudyContents(name, len(states), states.count(TrialState.COMPLETE),
                             states.count(TrialState.RUNNING))
    if contents.running and not force:
        raise StudyError(
            f"study {fmt.quoted(name)} has {contents.running} running "
            f"trial{'' if contents.running == 1 else 's'} (a worker may still be training "
            f"{'it' if contents.running == 1 else 'them'}); stop its workers first, or pass "
            "--force to delete it anyway")
    return contents


def deletable(storage: optuna.storages.BaseStorage, name: str,
              force: bool = False) -> StudyContents:
    """What :func:`delete_study` would remove, or the error it would give (before asking)."""
    return retrying(lambda: _contents(storage, name, force), f"reading study {fmt.quoted(name)}")


def delete_study(storage: optuna.storages.RDBStorage, name: str,
                 force: bool = False) -> StudyContents:
    """Delete study ``name`` and all its trials; return what was removed.

    Raises StudyError for an unknown name (listing the studies) and, unless ``force``,
    for a study with RUNNING trials. Runs under the study's lock and the storage retry policy.
    """
    def locked() -> StudyContents:
        with study_lock(storage, name):
            contents = _contents(storage, name, force)
            storage.delete_study(storage.get_study_id_from_name(name))
            return contents

    return retrying(locked, f"deleting study {fmt.quoted(name)}")
