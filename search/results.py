"""Stored trials -> one result row per configuration, the shape every output starts from.

The CLI's table / CSV / JSON, the SQL view's tests and the report all read
these rows, so the numbers a person sees are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import NoiseSearchError
from search.noise import BASELINE
from search.study import CONFIG_ATTR, SPEC_ATTR

_STATE_ORDER = {"COMPLETE": 0, "RUNNING": 1, "WAITING": 2, "FAIL": 3, "PRUNED": 4}


def load_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study by name; an unknown name lists the studies that exist."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        listed = ", ".join(names) if names else "none yet; start one with `noise-search run`"
        raise NoiseSearchError(f"no study named {name!r} in this storage; studies: {listed}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclass(frozen=True)
class StudyResults:
    name: str
    metric: str
    direction: str  # maximize | minimize
    rows: list[dict[str, Any]]
    grid_size: int

    @property
    def baseline(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["placement"] == BASELINE
                     and r["state"] == "COMPLETE"), None)

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["state"] == "COMPLETE"]


def _row(trial: FrozenTrial) -> dict[str, Any]:
    a = trial.user_attrs
    return {
        "config": a[CONFIG_ATTR],
        "placement": a.get("placement", BASELINE),
        "std": a.get("std", 0.0),
        "kind": a.get("kind", "additive"),
        "state": trial.state.name,
        "trial": trial.number,
        "n": a.get("repeats"),
        "mean": a.get("test_mean"),
        "sd": a.get("test_sd"),
        "sem": a.get("test_sem"),
        "ci_low": a.get("test_ci_low"),
        "ci_high": a.get("test_ci_high"),
        "train_mean": a.get("train_mean"),
        "duration_s": a.get("duration_s"),
        "failure": a.get("failure"),
    }


def _representative(trials: list[FrozenTrial]) -> FrozenTrial:
    """Of several trials of one configuration (retries), the one that says most."""
    return min(trials, key=lambda t: (_STATE_ORDER.get(t.state.name, 9), -t.number))


def collect(study: optuna.Study) -> StudyResults:
    """One row per configuration, best first; configurations not yet complete at the end."""
    metric = study.user_attrs.get("metric", "value")
    if SPEC_ATTR not in study.user_attrs:
        raise NoiseSearchError(f"study {study.study_name!r} was not created by noise-search")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    by_config: dict[str, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get(CONFIG_ATTR)
        if key is not None:
            by_config.setdefault(key, []).append(trial)
    rows = [_row(_representative(trials)) for trials in by_config.values()]
    baseline = next((r for r in rows if r["config"] == BASELINE and r["state"] == "COMPLETE"),
                    None)
    for row in rows:
        row["metric"] = metric
        if row["state"] == "COMPLETE" and baseline is not None:
            row["diff"] = row["mean"] - baseline["mean"]
        else:
            row["diff"] = None
    sign = -1.0 if maximize else 1.0
    rows.sort(key=lambda r: (r["state"] != "COMPLETE",
                             sign * r["mean"] if r["mean"] is not None else 0.0, r["config"]))
    grid = study.user_attrs.get("grid") or []
    return StudyResults(study.study_name, metric, "maximize" if maximize else "minimize", rows,
                        len(grid))


def require_completed(results: StudyResults) -> None:
    if not results.completed:
        raise NoiseSearchError(
            f"study {results.name!r} has no completed trial yet; run it with `noise-search run`"
        )


def study_overview(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """Each study in the storage with its progress (for `noise-search studies`)."""
    out = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        trials = storage.get_all_trials(frozen._study_id, deepcopy=False)
        counts = {state.name: 0 for state in TrialState}
        for t in trials:
            counts[t.state.name] += 1
        grid = frozen.user_attrs.get("grid") or []
        spec = frozen.user_attrs.get(SPEC_ATTR) or {}
        total = len(grid) if spec.get("study", {}).get("sampler", "grid") == "grid" else \
            spec.get("study", {}).get("n_trials", 0)
        done = {t.user_attrs.get(CONFIG_ATTR) for t in trials if t.state == TrialState.COMPLETE}
        out.append({
            "name": frozen.study_name,
            "metric": frozen.user_attrs.get("metric", "?"),
            "complete": len(done),
            "total": total,
            "running": counts["RUNNING"],
            "waiting": counts["WAITING"],
            "failed": counts["FAIL"],
        })
    return out
