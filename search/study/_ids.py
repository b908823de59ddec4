"""Optuna's storage id of a trial, which its public API does not expose.

Storage methods (heartbeat, state, system attributes) take the trial id, while Trial and
FrozenTrial only carry it privately; this is the one place that reads it.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return int(trial._trial_id)
