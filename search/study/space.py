"""The search space: a configuration as Optuna parameters, and what a sampler suggests.

The parameters are what optuna-dashboard shows and what tpe / random sample: ``placement``,
then σ. A queued trial already names its configuration; suggesting its parameters only
records them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from search.noise import NoiseConfig, parse_placement, site_name
from search.spec import StudySpec
from search.study import record


def _std_range(grid: tuple[float, ...], sampled: bool) -> tuple[float, float, bool]:
    """(low, high, log) of a σ parameter: the grid's span, log-scaled when a sampler draws it."""
    if not sampled:
        return min(grid), max(grid), False
    positive = [v for v in grid if v > 0] or [1e-6]
    low, high = min(positive), max(grid)
    return low, max(high, low), True


def _std_param(site: str, spec: StudySpec) -> str:
    """Sites sharing the study's grid (`noise.std`) share the parameter `std`; a site with its
    own grid in `[noise.site_std]` gets `std_<site>`, whose range is that grid's."""
    return f"std_{site}" if site in dict(spec.noise.site_std) else "std"


def trial_params(config: NoiseConfig, spec: StudySpec) -> dict[str, object]:
    """The parameters of a configuration: placement, then σ. The baseline has none ("none" is
    not a placement to sample)."""
    if config.is_baseline:
        return {}
    params: dict[str, object] = {"placement": config.placement}
    for site, sigma in config.sigmas:
        params[_std_param(site_name(site), spec)] = sigma
    return params


def _suggest_param(trial: optuna.Trial, name: str, spec: StudySpec) -> Any:
    """Suggest one parameter of `trial_params` (a queued trial gets its fixed value back)."""
    if name == "placement":
        return trial.suggest_categorical("placement", list(spec.noise.placements))
    grid = spec.noise.std if name == "std" else dict(spec.noise.site_std)[name[len("std_"):]]
    low, high, log = _std_range(grid, sampled=spec.study.sampler != "grid")
    return trial.suggest_float(name, low, high, log=log)


def suggest(trial: optuna.Trial, spec: StudySpec) -> NoiseConfig:
    """The trial's configuration, recorded as its parameters.

    Queued trials carry their configuration; for tpe / random the sampler draws it.
    """
    config = record.config_of(trial.user_attrs)
    if config is not None:
        for name in trial_params(config, spec):
            _suggest_param(trial, name, spec)
        return config
    # The placements were checked against the study's sites when the file was loaded.
    sites = parse_placement(str(_suggest_param(trial, "placement", spec)), allowed=None)
    # Sites without their own grid share one σ: suggesting "std" again returns it.
    sigmas = tuple((site, float(_suggest_param(trial, _std_param(site_name(site), spec), spec)))
                   for site in sites)
    return NoiseConfig(sigmas, spec.noise.kind)


def sampler(spec: StudySpec, n_trials: int) -> optuna.samplers.BaseSampler:
    """The study's sampler for proposing trial ``n_trials`` (how many the study has so far).

    Seeded from the study's seed and that count, and made afresh for each proposal (the
    samplers keep no state of their own beyond their generator; the history is in the study):
    a study run again from its file proposes the same configurations, and workers sharing a
    study, which propose under the study lock, never draw from the same seed.
    """
    seed = int(np.random.SeedSequence([spec.study.seed, n_trials]).generate_state(1)[0])
    if spec.study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)
